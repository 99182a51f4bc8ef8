//! Training the signal heads in candle: multinomial logistic regression or a one-hidden-
//! layer MLP on the encoder's vectors, weighted cross-entropy (class weights against
//! imbalance), AdamW, mini-batches, early stopping on a held-back part of the training
//! data. Deterministic for a seed: initial weights, the split and the batch order come
//! from one seeded generator, and candle's CPU kernels do not reorder sums between runs.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::metrics::Confusion;

/// The shape of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// Multinomial logistic regression: one linear layer, softmax.
    Linear,
    /// One hidden layer with GELU.
    Mlp { hidden: usize },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    pub seed: u64,
    /// Share of the training data held back for early stopping.
    pub held_back: f64,
    pub max_epochs: usize,
    /// Epochs without a lower held-back loss before stopping.
    pub patience: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// Weight each class by `examples / (classes · class examples)`.
    pub class_weights: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            seed: 7,
            held_back: 0.1,
            max_epochs: 200,
            patience: 12,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            batch_size: 128,
            class_weights: true,
        }
    }
}

/// A trained head's parameters: `(weight [out × in], bias [out])` per layer, GELU
/// between layers.
#[derive(Debug, Clone)]
pub struct Parameters {
    pub architecture: Architecture,
    pub layers: Vec<(Tensor, Tensor)>,
}

impl Parameters {
    /// Class probabilities, one row per input row.
    pub fn probabilities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax_last_dim(&self.logits(x)?)
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (at, (w, b)) in self.layers.iter().enumerate() {
            if at > 0 {
                h = h.gelu_erf()?;
            }
            h = h.matmul(&w.t()?)?.broadcast_add(b)?;
        }
        Ok(h)
    }

    pub fn predict(&self, x: &Tensor) -> candle_core::Result<Vec<usize>> {
        self.logits(x)?
            .argmax(1)?
            .to_vec1::<u32>()
            .map(|v| v.into_iter().map(|c| c as usize).collect())
    }
}

/// What training produced, with its own held-back figures.
#[derive(Debug, Clone)]
pub struct Trained {
    pub parameters: Parameters,
    /// Epochs run before early stopping, and the one whose weights were kept.
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub held_back_macro_f1: f64,
}

/// splitmix64: small, seedable, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Each class's indices in `labels`, shuffled: what both stratified splits start from.
fn shuffled_classes(labels: &[usize], rng: &mut Rng) -> Vec<Vec<usize>> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    (0..classes)
        .map(|class| {
            let mut members: Vec<usize> =
                (0..labels.len()).filter(|&i| labels[i] == class).collect();
            rng.shuffle(&mut members);
            members
        })
        .collect()
}

/// Indices of `labels` split per class (stratified) into (train, held back).
pub fn stratified_split(
    labels: &[usize],
    held_back: f64,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut back) = (Vec::new(), Vec::new());
    for members in shuffled_classes(labels, rng) {
        let n_back = ((members.len() as f64) * held_back).round() as usize;
        back.extend_from_slice(&members[..n_back]);
        train.extend_from_slice(&members[n_back..]);
    }
    train.sort_unstable();
    back.sort_unstable();
    (train, back)
}

/// Folds for cross-validation: each index lands in exactly one test fold, classes spread
/// evenly over the folds.
pub fn stratified_folds(labels: &[usize], folds: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); folds];
    for (at, i) in shuffled_classes(labels, rng)
        .into_iter()
        .flatten()
        .enumerate()
    {
        out[at % folds].push(i);
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    out
}

/// The vectors as the rows of a `[n × dims]` tensor: what heads, training and the
/// prototype scorer all compute on.
pub fn matrix<'a>(
    vectors: impl ExactSizeIterator<Item = &'a Vec<f32>>,
    dims: usize,
) -> candle_core::Result<Tensor> {
    let n = vectors.len();
    let flat: Vec<f32> = vectors.flatten().copied().collect();
    Tensor::from_vec(flat, (n, dims), &Device::Cpu)
}

/// `vectors[indices]` as a tensor, without copying the rest.
fn rows(vectors: &[Vec<f32>], indices: &[usize]) -> candle_core::Result<Tensor> {
    let dims = vectors.first().map_or(0, Vec::len);
    matrix(indices.iter().map(|&i| &vectors[i]), dims)
}

fn init_layer(rng: &mut Rng, out: usize, input: usize) -> candle_core::Result<(Var, Var)> {
    // Uniform ±1/√in, as PyTorch's nn.Linear.
    let bound = 1.0 / (input as f64).sqrt();
    let w: Vec<f32> = (0..out * input)
        .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
        .collect();
    let w = Var::from_tensor(&Tensor::from_vec(w, (out, input), &Device::Cpu)?)?;
    let b = Var::from_tensor(&Tensor::zeros(out, DType::F32, &Device::Cpu)?)?;
    Ok((w, b))
}

/// Labelled vectors: `vectors[i]` is of class `labels[i]`. `weights` (empty: all 1)
/// scale each example's loss, e.g. so that each source of a mixed training set carries
/// the same total weight.
#[derive(Debug, Clone, Copy)]
pub struct TrainingSet<'a> {
    pub vectors: &'a [Vec<f32>],
    pub labels: &'a [usize],
    pub weights: &'a [f32],
}

impl<'a> TrainingSet<'a> {
    /// Every example weighted 1.
    pub fn unweighted(vectors: &'a [Vec<f32>], labels: &'a [usize]) -> TrainingSet<'a> {
        TrainingSet {
            vectors,
            labels,
            weights: &[],
        }
    }
}

/// Trains one head on `set` (`classes` classes).
pub fn train(
    set: TrainingSet<'_>,
    classes: usize,
    architecture: Architecture,
    options: &TrainOptions,
) -> candle_core::Result<Trained> {
    let TrainingSet {
        vectors,
        labels,
        weights: example_weights,
    } = set;
    let weight_of = |i: usize| example_weights.get(i).copied().unwrap_or(1.0);
    let dim = vectors.first().map_or(0, Vec::len);
    let mut rng = Rng::new(options.seed);
    let (mut train_idx, back_idx) = stratified_split(labels, options.held_back, &mut rng);
    let widths = match architecture {
        Architecture::Linear => vec![dim, classes],
        Architecture::Mlp { hidden } => vec![dim, hidden, classes],
    };
    let vars: Vec<(Var, Var)> = widths
        .windows(2)
        .map(|w| init_layer(&mut rng, w[1], w[0]))
        .collect::<candle_core::Result<_>>()?;
    let mut optimizer = AdamW::new(
        vars.iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect(),
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        },
    )?;
    // Class totals of example weight: a class's weight evens out its share of the loss.
    let mut totals = vec![0f32; classes];
    for &i in &train_idx {
        totals[labels[i]] += weight_of(i);
    }
    let all: f32 = totals.iter().sum();
    let weights: Vec<f32> = totals
        .iter()
        .map(|&n| {
            if options.class_weights && n > 0.0 {
                all / (classes as f32 * n)
            } else {
                1.0
            }
        })
        .collect();
    let class_weights = Tensor::new(weights.as_slice(), &Device::Cpu)?;
    let snapshot = |vars: &[(Var, Var)]| -> candle_core::Result<Parameters> {
        Ok(Parameters {
            architecture,
            layers: vars
                .iter()
                .map(|(w, b)| Ok((w.as_tensor().copy()?, b.as_tensor().copy()?)))
                .collect::<candle_core::Result<_>>()?,
        })
    };
    let back_x = rows(vectors, &back_idx)?;
    let back_labels: Vec<usize> = back_idx.iter().map(|&i| labels[i]).collect();
    let back_y = Tensor::new(
        back_labels
            .iter()
            .map(|&c| c as u32)
            .collect::<Vec<_>>()
            .as_slice(),
        &Device::Cpu,
    )?;
    let weights_of = |indices: &[usize]| -> candle_core::Result<Tensor> {
        let w: Vec<f32> = indices.iter().map(|&i| weight_of(i)).collect();
        Tensor::new(w.as_slice(), &Device::Cpu)
    };
    let back_w = weights_of(&back_idx)?;
    // Weighted cross-entropy of `parameters` on (x, y): the training loss, and the
    // early-stopping measure on the held-back rows (smoother than their macro-F1).
    let loss_of = |parameters: &Parameters,
                   x: &Tensor,
                   y: &Tensor,
                   example_w: &Tensor|
     -> candle_core::Result<Tensor> {
        let log_p = candle_nn::ops::log_softmax(&parameters.logits(x)?, 1)?;
        let picked = log_p.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?;
        let w = class_weights.index_select(y, 0)?.mul(example_w)?;
        picked.mul(&w)?.sum_all()?.neg()? / w.sum_all()?.to_scalar::<f32>()? as f64
    };
    let mut best = (f64::INFINITY, snapshot(&vars)?, 0);
    let mut since_best = 0;
    let mut epochs = 0;
    for epoch in 1..=options.max_epochs {
        epochs = epoch;
        rng.shuffle(&mut train_idx);
        for batch in train_idx.chunks(options.batch_size) {
            let x = rows(vectors, batch)?;
            let y: Vec<u32> = batch.iter().map(|&i| labels[i] as u32).collect();
            let y = Tensor::new(y.as_slice(), &Device::Cpu)?;
            let current = Parameters {
                architecture,
                layers: vars
                    .iter()
                    .map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone()))
                    .collect(),
            };
            optimizer.backward_step(&loss_of(&current, &x, &y, &weights_of(batch)?)?)?;
        }
        if back_idx.is_empty() {
            best = (0.0, snapshot(&vars)?, epoch);
            continue;
        }
        let candidate = snapshot(&vars)?;
        let loss = loss_of(&candidate, &back_x, &back_y, &back_w)?.to_scalar::<f32>()? as f64;
        if loss < best.0 {
            best = (loss, candidate, epoch);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= options.patience {
                break;
            }
        }
    }
    let parameters = best.1;
    let held_back_macro_f1 = if back_idx.is_empty() {
        0.0
    } else {
        let predicted = parameters.predict(&back_x)?;
        let mut confusion = Confusion::new((0..classes).map(|c| c.to_string()).collect());
        for (t, p) in back_labels.iter().zip(&predicted) {
            confusion.add(*t, *p);
        }
        confusion.scores().macro_f1
    };
    Ok(Trained {
        parameters,
        epochs_run: epochs,
        best_epoch: best.2,
        held_back_macro_f1,
    })
}

/// `folds`-fold cross-validation over the rows `evaluated` (all rows when it is `None`):
/// each fold of them is predicted by a head trained on every other row (the other folds,
/// and the rows outside `evaluated`, which are always training data); the confusion
/// matrix sums every fold's predictions.
pub fn cross_validate(
    set: TrainingSet<'_>,
    class_names: &[String],
    architecture: Architecture,
    folds: usize,
    options: &TrainOptions,
    evaluated: Option<&[usize]>,
) -> candle_core::Result<Confusion> {
    let TrainingSet {
        vectors,
        labels,
        weights: example_weights,
    } = set;
    let mut rng = Rng::new(options.seed ^ 0xF01D);
    let all: Vec<usize>;
    let evaluated = match evaluated {
        Some(rows) => rows,
        None => {
            all = (0..labels.len()).collect();
            &all
        }
    };
    let evaluated_labels: Vec<usize> = evaluated.iter().map(|&i| labels[i]).collect();
    let test_folds: Vec<Vec<usize>> = stratified_folds(&evaluated_labels, folds, &mut rng)
        .into_iter()
        .map(|fold| fold.into_iter().map(|at| evaluated[at]).collect())
        .collect();
    let mut total = Confusion::new(class_names.to_vec());
    for test in &test_folds {
        let is_test: std::collections::HashSet<usize> = test.iter().copied().collect();
        let train_idx: Vec<usize> = (0..labels.len()).filter(|i| !is_test.contains(i)).collect();
        let fold_vectors: Vec<Vec<f32>> = train_idx.iter().map(|&i| vectors[i].clone()).collect();
        let fold_labels: Vec<usize> = train_idx.iter().map(|&i| labels[i]).collect();
        let fold_weights: Vec<f32> = if example_weights.is_empty() {
            Vec::new()
        } else {
            train_idx.iter().map(|&i| example_weights[i]).collect()
        };
        let trained = train(
            TrainingSet {
                vectors: &fold_vectors,
                labels: &fold_labels,
                weights: &fold_weights,
            },
            class_names.len(),
            architecture,
            options,
        )?;
        let predicted = trained.parameters.predict(&rows(vectors, test)?)?;
        for (&i, p) in test.iter().zip(predicted) {
            total.add(labels[i], p);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three Gaussian-ish blobs in 8 dimensions, deterministic.
    fn blobs(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let class = i % 3;
            let v: Vec<f32> = (0..8)
                .map(|d| {
                    let centre = if d == class { 2.0 } else { 0.0 };
                    centre + (rng.unit() as f32 - 0.5)
                })
                .collect();
            vectors.push(v);
            labels.push(class);
        }
        (vectors, labels)
    }

    #[test]
    fn both_architectures_learn_separable_classes_deterministically() {
        let (vectors, labels) = blobs(300, 1);
        let options = TrainOptions {
            max_epochs: 60,
            ..Default::default()
        };
        for architecture in [Architecture::Linear, Architecture::Mlp { hidden: 16 }] {
            let set = TrainingSet::unweighted(&vectors, &labels);
            let a = train(set, 3, architecture, &options).unwrap();
            let b = train(set, 3, architecture, &options).unwrap();
            assert!(
                a.held_back_macro_f1 > 0.95,
                "{architecture:?}: {}",
                a.held_back_macro_f1
            );
            let (wa, wb) = (&a.parameters.layers[0].0, &b.parameters.layers[0].0);
            let diff = (wa - wb).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(
                diff.to_scalar::<f32>().unwrap(),
                0.0,
                "{architecture:?} not deterministic"
            );
        }
    }

    #[test]
    fn examples_weighted_zero_do_not_teach() {
        let (vectors, labels) = blobs(300, 4);
        // Three in five examples relabelled to a wrong class, weighted zero: were the
        // weights ignored, the wrong labels would be the majority and win.
        let (mut noisy, mut weights) = (labels.clone(), vec![1.0f32; labels.len()]);
        for i in (0..labels.len()).filter(|i| i % 5 < 3) {
            noisy[i] = (labels[i] + 1) % 3;
            weights[i] = 0.0;
        }
        let options = TrainOptions {
            held_back: 0.0,
            max_epochs: 60,
            ..Default::default()
        };
        let trained = train(
            TrainingSet {
                vectors: &vectors,
                labels: &noisy,
                weights: &weights,
            },
            3,
            Architecture::Linear,
            &options,
        )
        .unwrap();
        let x = rows(&vectors, &(0..vectors.len()).collect::<Vec<_>>()).unwrap();
        let predicted = trained.parameters.predict(&x).unwrap();
        let right = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        assert!(right > 290, "{right} of 300");
    }

    #[test]
    fn cross_validation_predicts_every_example_once() {
        let (vectors, labels) = blobs(90, 2);
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let options = TrainOptions {
            batch_size: 16,
            ..Default::default()
        };
        let confusion = cross_validate(
            TrainingSet::unweighted(&vectors, &labels),
            &names,
            Architecture::Linear,
            5,
            &options,
            None,
        )
        .unwrap();
        let scores = confusion.scores();
        assert_eq!(scores.examples, 90);
        assert!(scores.accuracy > 0.9, "{scores:?}");
        let evaluated: Vec<usize> = (0..30).collect();
        let confusion = cross_validate(
            TrainingSet::unweighted(&vectors, &labels),
            &names,
            Architecture::Linear,
            5,
            &options,
            Some(&evaluated),
        )
        .unwrap();
        assert_eq!(confusion.scores().examples, 30);
    }

    #[test]
    fn splits_are_stratified_and_cover_everything() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let (train_idx, back) = stratified_split(&labels, 0.2, &mut Rng::new(3));
        assert_eq!(train_idx.len() + back.len(), 100);
        assert_eq!(back.iter().filter(|&&i| labels[i] == 1).count(), 2);
        let folds = stratified_folds(&labels, 5, &mut Rng::new(3));
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(
            folds
                .iter()
                .all(|f| f.iter().filter(|&&i| labels[i] == 1).count() == 2)
        );
    }
}

//! Fine-tuning the signal branch: the encoder's top layers and one head per task,
//! trained together on the cached activations of the shared layers (`activations.rs`).
//!
//! - **Tasks**: single-label classification (sentiment, emotion, complaint: softmax,
//!   class-weighted cross-entropy) and one multi-label task (the prototype labels:
//!   sigmoid per label, binary cross-entropy over the labels an example is labelled for,
//!   positives up-weighted against their rarity).
//! - **Optimiser**: AdamW, a lower learning rate for the pretrained layers than for the
//!   fresh heads, linear warm-up then linear decay, gradient norm clipped at 1, dropout.
//! - **Epochs**: each epoch draws every task's quota of examples (the large sentiment
//!   corpus is sampled, so it does not drown the small tasks), batched by length.
//!   After every epoch the held-back dev examples are predicted and scored by the
//!   caller's measure; the best epoch's weights are kept, and training stops after
//!   `patience` epochs without a better score.
//! - **Deterministic** for a seed: one splitmix64 generator draws the sample, the batch
//!   order and every dropout mask; candle's CPU kernels do not reorder sums between runs.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::activations::Activations;
use super::layer::TrainableLayer;
use crate::train::Rng;

/// What a task predicts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// One of `classes` (softmax).
    Classes { classes: Vec<String> },
    /// Any of `labels`, each on its own (sigmoid).
    Labels { labels: Vec<String> },
}

impl TaskKind {
    pub fn outputs(&self) -> &[String] {
        match self {
            TaskKind::Classes { classes } => classes,
            TaskKind::Labels { labels } => labels,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub name: String,
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// What an example is labelled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Class(usize),
    /// Per label of the task: whether it applies, `None` where the example does not say.
    Labels(Vec<Option<bool>>),
}

/// One labelled text: `text` indexes the activations.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: usize,
    pub task: usize,
    /// The source it comes from: epochs sample per source (`TuneOptions::quotas`).
    pub source: usize,
    pub target: Target,
    /// Scales its loss (sources balanced against each other).
    pub weight: f32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TuneOptions {
    pub seed: u64,
    pub max_epochs: usize,
    /// Epochs without a better dev score before stopping.
    pub patience: usize,
    /// AdamW's learning rate for the tuned layers, at the top of the schedule.
    pub learning_rate: f64,
    /// … and for the heads, which start from random.
    pub head_learning_rate: f64,
    pub weight_decay: f64,
    /// Share of all steps spent warming the learning rate up from 0.
    pub warmup: f64,
    pub dropout: f32,
    /// Padded tokens per batch (texts × longest).
    pub batch_tokens: usize,
    /// Texts per batch at most.
    pub batch_texts: usize,
    /// Tokens of a text the tuned layers see (the shared layers saw it whole).
    pub max_tokens: usize,
    /// Per source, examples drawn per epoch (`None` or absent: all of them).
    pub quotas: Vec<Option<usize>>,
    /// Per source, how many times each epoch holds its examples (absent: once); the
    /// prototype labels' few examples are seen more often than one pass would.
    #[serde(default)]
    pub repeats: Vec<usize>,
    /// Weight each class of a single-label task inversely to its share of its source's
    /// examples, so every source's classes count evenly.
    pub class_weights: bool,
    /// Cap on the up-weighting of a rare label's positives.
    pub max_positive_weight: f32,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            seed: 7,
            max_epochs: 6,
            patience: 2,
            learning_rate: 1e-4,
            head_learning_rate: 2e-3,
            weight_decay: 0.01,
            warmup: 0.06,
            dropout: 0.1,
            batch_tokens: 2048,
            batch_texts: 32,
            max_tokens: 256,
            quotas: Vec::new(),
            repeats: Vec::new(),
            class_weights: true,
            max_positive_weight: 10.0,
        }
    }
}

/// The tuned layers and one linear head per task.
pub struct BranchModel {
    pub layers: Vec<TrainableLayer>,
    /// Per task, `(weight [outputs × dims], bias [outputs])`.
    pub heads: Vec<(Var, Var)>,
}

impl BranchModel {
    /// Heads initialised uniformly in ±1/√dims (as PyTorch's `nn.Linear`), from `rng`.
    pub fn new(
        layers: Vec<TrainableLayer>,
        tasks: &[Task],
        dims: usize,
        rng: &mut Rng,
    ) -> candle_core::Result<BranchModel> {
        let bound = 1.0 / (dims as f64).sqrt();
        let heads = tasks
            .iter()
            .map(|task| {
                let out = task.kind.outputs().len();
                let w: Vec<f32> = (0..out * dims)
                    .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                Ok((
                    Var::from_tensor(&Tensor::from_vec(w, (out, dims), &Device::Cpu)?)?,
                    Var::from_tensor(&Tensor::zeros(out, DType::F32, &Device::Cpu)?)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(BranchModel { layers, heads })
    }

    fn layer_vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|l| l.vars().into_iter().cloned())
            .collect()
    }

    fn head_vars(&self) -> Vec<Var> {
        self.heads
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// The mean-pooled output of the tuned layers, `[texts, dims]`.
    fn pooled(
        &self,
        batch: &super::activations::Batch,
        dropout: &mut dyn FnMut(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut hidden = batch.hidden.clone();
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &batch.attention_mask, dropout)?;
        }
        hidden.broadcast_mul(&batch.pool)?.sum(1)
    }

    /// A copy of every weight, detached from training.
    pub fn snapshot(&self) -> candle_core::Result<Snapshot> {
        let copy = |vars: Vec<Var>| -> candle_core::Result<Vec<Tensor>> {
            vars.iter().map(|v| v.as_tensor().copy()).collect()
        };
        Ok(Snapshot {
            layers: copy(self.layer_vars())?,
            heads: copy(self.head_vars())?,
        })
    }

    fn restore(&self, snapshot: &Snapshot) -> candle_core::Result<()> {
        for (var, t) in self.layer_vars().iter().zip(&snapshot.layers) {
            var.set(t)?;
        }
        for (var, t) in self.head_vars().iter().zip(&snapshot.heads) {
            var.set(t)?;
        }
        Ok(())
    }
}

/// Weights as plain tensors: the layers' in `TENSOR_NAMES` order per layer, then each
/// head's weight and bias.
#[derive(Clone)]
pub struct Snapshot {
    pub layers: Vec<Tensor>,
    pub heads: Vec<Tensor>,
}

/// Per example, the task's output probabilities (softmax for classes, sigmoid per label).
pub type Predictions = Vec<Vec<f32>>;

/// What training reports as it goes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch, and its total.
    pub step: usize,
    pub steps: usize,
    /// Mean training loss over the epoch so far.
    pub loss: f64,
    /// Set once the epoch is done: its dev score.
    pub dev_score: Option<f64>,
}

/// One epoch's record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_score: f64,
    /// Per task, the dev figure the score averages.
    pub dev_figures: Vec<f64>,
    pub seconds: f64,
}

pub struct Tuned {
    pub best: Snapshot,
    pub best_epoch: usize,
    pub history: Vec<EpochRecord>,
}

/// Predicts `examples` with the model as it is (no dropout).
pub fn predict(
    model: &BranchModel,
    tasks: &[Task],
    activations: &Activations,
    examples: &[Example],
    options: &TuneOptions,
) -> candle_core::Result<Predictions> {
    let order: Vec<usize> = (0..examples.len()).collect();
    let mut out = vec![Vec::new(); examples.len()];
    let mut no_dropout = |t: &Tensor| Ok(t.clone());
    for batch in batches(&order, examples, activations, options, None) {
        let texts: Vec<usize> = batch.iter().map(|&e| examples[e].text).collect();
        let input = activations.batch(&texts, options.max_tokens)?;
        let pooled = model.pooled(&input, &mut no_dropout)?;
        for (task_index, task) in tasks.iter().enumerate() {
            let rows: Vec<usize> = (0..batch.len())
                .filter(|&r| examples[batch[r]].task == task_index)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let (w, b) = &model.heads[task_index];
            let logits = head_logits(&pooled, &rows, w, b)?;
            let probabilities = match task.kind {
                TaskKind::Classes { .. } => candle_nn::ops::softmax(&logits, D::Minus1)?,
                TaskKind::Labels { .. } => candle_nn::ops::sigmoid(&logits)?,
            };
            for (r, p) in rows.iter().zip(probabilities.to_vec2::<f32>()?) {
                out[batch[*r]] = p;
            }
        }
    }
    Ok(out)
}

fn head_logits(
    pooled: &Tensor,
    rows: &[usize],
    weight: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let index = Tensor::new(
        rows.iter()
            .map(|&r| r as u32)
            .collect::<Vec<_>>()
            .as_slice(),
        &Device::Cpu,
    )?;
    super::layer::linear(&pooled.index_select(&index, 0)?, weight, bias)
}

/// Example indices cut into batches of similar length: `order` is walked in windows of
/// 64 batches' worth, each window sorted by length (little padding) and cut within the
/// token and text budgets; with `rng` the batches are then shuffled.
fn batches(
    order: &[usize],
    examples: &[Example],
    activations: &Activations,
    options: &TuneOptions,
    rng: Option<&mut Rng>,
) -> Vec<Vec<usize>> {
    let length = |e: usize| activations.tokens(examples[e].text).min(options.max_tokens);
    let mut out = Vec::new();
    for window in order.chunks(options.batch_texts * 64) {
        let mut window = window.to_vec();
        window.sort_by_key(|&e| std::cmp::Reverse(length(e)));
        let mut current: Vec<usize> = Vec::new();
        for e in window {
            let width = current.first().map_or(length(e), |&first| length(first));
            if !current.is_empty()
                && (current.len() >= options.batch_texts
                    || width * (current.len() + 1) > options.batch_tokens)
            {
                out.push(std::mem::take(&mut current));
            }
            current.push(e);
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    if let Some(rng) = rng {
        rng.shuffle(&mut out);
    }
    out
}

/// The loss weights that even out classes and labels, from the training examples.
struct Balance {
    /// Per source, per class: `examples / (classes present · class examples)` within the
    /// source (single-label tasks), so a source's rare class counts as much as its common
    /// one and each source's mean weight stays 1.
    classes: Vec<Vec<f32>>,
    /// Per task, per label: how much a positive counts against the label's negatives
    /// (multi-label tasks), capped at `max_positive_weight`.
    positives: Vec<Vec<f32>>,
}

fn balance(tasks: &[Task], train: &[Example], options: &TuneOptions) -> Balance {
    let sources = train.iter().map(|e| e.source + 1).max().unwrap_or(0);
    let classes = (0..sources)
        .map(|s| {
            let outputs = train
                .iter()
                .find(|e| e.source == s)
                .map_or(0, |e| tasks[e.task].kind.outputs().len());
            let mut totals = vec![0f32; outputs];
            for e in train.iter().filter(|e| e.source == s) {
                if let Target::Class(c) = e.target {
                    totals[c] += e.weight;
                }
            }
            let all: f32 = totals.iter().sum();
            let present = totals.iter().filter(|&&n| n > 0.0).count().max(1) as f32;
            totals
                .iter()
                .map(|&n| {
                    if options.class_weights && n > 0.0 {
                        all / (present * n)
                    } else {
                        1.0
                    }
                })
                .collect()
        })
        .collect();
    let positives = tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let outputs = task.kind.outputs().len();
            let (mut positive, mut negative) = (vec![0f32; outputs], vec![0f32; outputs]);
            for e in train.iter().filter(|e| e.task == t) {
                if let Target::Labels(labels) = &e.target {
                    for (l, known) in labels.iter().enumerate() {
                        match known {
                            Some(true) => positive[l] += 1.0,
                            Some(false) => negative[l] += 1.0,
                            None => {}
                        }
                    }
                }
            }
            positive
                .iter()
                .zip(&negative)
                .map(|(&p, &n)| {
                    if p > 0.0 {
                        (n / p).clamp(1.0, options.max_positive_weight)
                    } else {
                        1.0
                    }
                })
                .collect()
        })
        .collect();
    Balance { classes, positives }
}

/// The weighted loss of a batch, summed (the caller divides by the batch's weight).
fn batch_loss(
    model: &BranchModel,
    tasks: &[Task],
    pooled: &Tensor,
    batch: &[usize],
    examples: &[Example],
    balance: &Balance,
) -> candle_core::Result<(Tensor, f32)> {
    let mut total: Option<Tensor> = None;
    let mut weight_sum = 0f32;
    for (t, task) in tasks.iter().enumerate() {
        let rows: Vec<usize> = (0..batch.len())
            .filter(|&r| examples[batch[r]].task == t)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let (w, b) = &model.heads[t];
        let logits = head_logits(pooled, &rows, w, b)?;
        let loss = match task.kind {
            TaskKind::Classes { .. } => {
                let mut targets = Vec::with_capacity(rows.len());
                let mut weights = Vec::with_capacity(rows.len());
                for &r in &rows {
                    let e = &examples[batch[r]];
                    let Target::Class(c) = e.target else {
                        return Err(candle_core::Error::Msg(format!(
                            "task {} takes classes",
                            task.name
                        )));
                    };
                    targets.push(c as u32);
                    let w = e.weight * balance.classes[e.source][c];
                    weights.push(w);
                    weight_sum += e.weight;
                }
                let targets = Tensor::new(targets.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
                let weights = Tensor::new(weights.as_slice(), &Device::Cpu)?;
                let picked = candle_nn::ops::log_softmax(&logits, D::Minus1)?
                    .gather(&targets, 1)?
                    .squeeze(1)?;
                picked.mul(&weights)?.sum_all()?.neg()?
            }
            TaskKind::Labels { ref labels } => {
                let n = labels.len();
                let (mut y, mut mask) = (
                    Vec::with_capacity(rows.len() * n),
                    Vec::with_capacity(rows.len() * n),
                );
                let mut positive_weight = Vec::with_capacity(rows.len() * n);
                for &r in &rows {
                    let e = &examples[batch[r]];
                    let Target::Labels(known) = &e.target else {
                        return Err(candle_core::Error::Msg(format!(
                            "task {} takes labels",
                            task.name
                        )));
                    };
                    let labelled = known.iter().filter(|k| k.is_some()).count().max(1) as f32;
                    for (l, k) in known.iter().enumerate() {
                        y.push(if *k == Some(true) { 1f32 } else { 0.0 });
                        // Each example carries its weight spread over the labels it has.
                        mask.push(if k.is_some() {
                            e.weight / labelled
                        } else {
                            0.0
                        });
                        positive_weight.push(balance.positives[t][l]);
                    }
                    weight_sum += e.weight;
                }
                let shape = (rows.len(), n);
                let y = Tensor::from_vec(y, shape, &Device::Cpu)?;
                let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
                let positive_weight = Tensor::from_vec(positive_weight, shape, &Device::Cpu)?;
                // −[pw·y·log σ(z) + (1−y)·log(1−σ(z))] = pw·y·softplus(−z) + (1−y)·softplus(z)
                let positive = softplus(&logits.neg()?)?.mul(&y)?.mul(&positive_weight)?;
                let negative = softplus(&logits)?.mul(&(1.0 - &y)?)?;
                (positive + negative)?.mul(&mask)?.sum_all()?
            }
        };
        total = Some(match total {
            Some(t) => (t + loss)?,
            None => loss,
        });
    }
    let total = total.ok_or_else(|| candle_core::Error::Msg("an empty batch".into()))?;
    Ok((total, weight_sum))
}

/// log(1 + eˣ), stable for large |x|.
fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Draws an epoch: per source its quota of examples (all, or a sample without
/// replacement), shuffled together.
fn epoch_sample(train: &[Example], options: &TuneOptions, rng: &mut Rng) -> Vec<usize> {
    let sources = train.iter().map(|e| e.source + 1).max().unwrap_or(0);
    let mut order = Vec::new();
    for s in 0..sources {
        let mut of_source: Vec<usize> =
            (0..train.len()).filter(|&e| train[e].source == s).collect();
        rng.shuffle(&mut of_source);
        if let Some(Some(quota)) = options.quotas.get(s) {
            of_source.truncate(*quota);
        }
        for _ in 0..options.repeats.get(s).copied().unwrap_or(1).max(1) {
            order.extend_from_slice(&of_source);
        }
    }
    rng.shuffle(&mut order);
    order
}

/// Inverted dropout with masks from `rng`.
fn dropout(rng: &mut Rng, p: f32, x: &Tensor) -> candle_core::Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - p;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if (rng.unit() as f32) < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), &Device::Cpu)?)
}

/// Scales every gradient so their joint L2 norm is at most `max_norm`.
fn clip(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<()> {
    let mut squares = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = squares.sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(())
}

/// Keeps freed memory in the process: autograd allocates and frees megabytes per op, and
/// glibc's default returns such blocks to the kernel at once (`mmap` per block), which
/// made page faults most of a training step's time.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before the
    // training loop allocates, from the one thread that runs it.
    unsafe {
        // 32 MiB is glibc's ceiling for the mmap threshold on 64-bit.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Fine-tunes `model` on `train`, choosing the epoch by `score(dev predictions)` (higher
/// is better; it also returns the per-task figures it averaged).
#[allow(clippy::too_many_arguments)]
pub fn tune(
    model: &BranchModel,
    tasks: &[Task],
    activations: &Activations,
    train: &[Example],
    dev: &[Example],
    options: &TuneOptions,
    score: &dyn Fn(&Predictions) -> (f64, Vec<f64>),
    progress: &mut dyn FnMut(Progress),
) -> candle_core::Result<Tuned> {
    keep_freed_memory();
    let mut rng = Rng::new(options.seed);
    let balance = balance(tasks, train, options);
    let layer_vars = model.layer_vars();
    let head_vars = model.head_vars();
    let all_vars: Vec<Var> = layer_vars.iter().chain(&head_vars).cloned().collect();
    let mut layer_optimizer = AdamW::new(
        layer_vars.clone(),
        ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        },
    )?;
    let mut head_optimizer = AdamW::new(
        head_vars.clone(),
        ParamsAdamW {
            lr: options.head_learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        },
    )?;
    // The schedule needs the step count up front: one epoch's sample sets it.
    let steps_per_epoch = {
        let mut probe = Rng::new(options.seed ^ 0x5EED);
        let order = epoch_sample(train, options, &mut probe);
        batches(&order, train, activations, options, None).len()
    };
    let total_steps = (steps_per_epoch * options.max_epochs).max(1);
    let warmup_steps = ((total_steps as f64) * options.warmup).ceil().max(1.0);
    let schedule = |step: usize| -> f64 {
        let s = step as f64;
        if s < warmup_steps {
            (s + 1.0) / warmup_steps
        } else {
            ((total_steps as f64 - s) / (total_steps as f64 - warmup_steps)).max(0.0)
        }
    };
    let mut best: Option<(f64, Snapshot, usize)> = None;
    let mut history = Vec::new();
    let mut step = 0;
    let mut since_best = 0;
    for epoch in 1..=options.max_epochs {
        let started = std::time::Instant::now();
        let order = epoch_sample(train, options, &mut rng);
        let epoch_batches = batches(&order, train, activations, options, Some(&mut rng));
        let (mut loss_sum, mut loss_weight) = (0f64, 0f64);
        for (at, batch) in epoch_batches.iter().enumerate() {
            let texts: Vec<usize> = batch.iter().map(|&e| train[e].text).collect();
            let input = activations.batch(&texts, options.max_tokens)?;
            let p = options.dropout;
            let pooled = {
                let mut drop = |t: &Tensor| dropout(&mut rng, p, t);
                let pooled = model.pooled(&input, &mut drop)?;
                drop(&pooled)?
            };
            let (loss, weight) = batch_loss(model, tasks, &pooled, batch, train, &balance)?;
            let loss = (loss / weight.max(1e-6) as f64)?;
            loss_sum += loss.to_scalar::<f32>()? as f64 * weight as f64;
            loss_weight += weight as f64;
            let mut grads = loss.backward()?;
            clip(&mut grads, &all_vars, 1.0)?;
            let factor = schedule(step);
            layer_optimizer.set_learning_rate(options.learning_rate * factor);
            head_optimizer.set_learning_rate(options.head_learning_rate * factor);
            layer_optimizer.step(&grads)?;
            head_optimizer.step(&grads)?;
            step += 1;
            progress(Progress {
                epoch,
                epochs: options.max_epochs,
                step: at + 1,
                steps: epoch_batches.len(),
                loss: loss_sum / loss_weight.max(1e-9),
                dev_score: None,
            });
        }
        let predictions = predict(model, tasks, activations, dev, options)?;
        let (dev_score, dev_figures) = score(&predictions);
        progress(Progress {
            epoch,
            epochs: options.max_epochs,
            step: epoch_batches.len(),
            steps: epoch_batches.len(),
            loss: loss_sum / loss_weight.max(1e-9),
            dev_score: Some(dev_score),
        });
        history.push(EpochRecord {
            epoch,
            train_loss: loss_sum / loss_weight.max(1e-9),
            dev_score,
            dev_figures,
            seconds: started.elapsed().as_secs_f64(),
        });
        if best.as_ref().is_none_or(|(s, _, _)| dev_score > *s) {
            best = Some((dev_score, model.snapshot()?, epoch));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= options.patience {
                break;
            }
        }
    }
    let (_, best, best_epoch) =
        best.ok_or_else(|| candle_core::Error::Msg("no epoch ran".into()))?;
    model.restore(&best)?;
    Ok(Tuned {
        best,
        best_epoch,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal_branch::tests::{HIDDEN, tiny_bert};

    /// Texts of random rows whose class is the sign of their mean first value, and a label
    /// that is on where their mean second value is positive.
    fn toy(n: usize, seed: u64) -> (Activations, Vec<Example>) {
        let mut rng = Rng::new(seed);
        let mut rows = Vec::new();
        let mut examples = Vec::new();
        for i in 0..n {
            let len = 2 + (rng.next_u64() % 6) as usize;
            let text: Vec<f32> = (0..len * HIDDEN)
                .map(|_| rng.unit() as f32 * 2.0 - 1.0)
                .collect();
            let mean = |d: usize| text.iter().skip(d).step_by(HIDDEN).sum::<f32>();
            let target = if i % 2 == 0 {
                Target::Class(usize::from(mean(0) > 0.0))
            } else {
                Target::Labels(vec![Some(mean(1) > 0.0), None])
            };
            examples.push(Example {
                text: i,
                task: i % 2,
                source: i % 2,
                target,
                weight: 1.0,
            });
            rows.push(text);
        }
        (Activations::from_rows(HIDDEN, rows), examples)
    }

    fn tasks() -> Vec<Task> {
        vec![
            Task {
                name: "sign".into(),
                kind: TaskKind::Classes {
                    classes: vec!["negative".into(), "positive".into()],
                },
            },
            Task {
                name: "labels".into(),
                kind: TaskKind::Labels {
                    labels: vec!["last".into(), "unsaid".into()],
                },
            },
        ]
    }

    fn model(seed: u64) -> BranchModel {
        let (_, tuned) = tiny_bert(seed);
        let layer = TrainableLayer::from_weights(&tuned, 2, 4, 1e-12).unwrap();
        BranchModel::new(vec![layer], &tasks(), HIDDEN, &mut Rng::new(seed)).unwrap()
    }

    fn accuracy(predictions: &Predictions, examples: &[Example]) -> (f64, f64) {
        let (mut right, mut all) = ([0usize; 2], [0usize; 2]);
        for (p, e) in predictions.iter().zip(examples) {
            let ok = match &e.target {
                Target::Class(c) => (p[1] > p[0]) == (*c == 1),
                Target::Labels(l) => (p[0] > 0.5) == (l[0] == Some(true)),
            };
            right[e.task] += usize::from(ok);
            all[e.task] += 1;
        }
        (
            right[0] as f64 / all[0] as f64,
            right[1] as f64 / all[1] as f64,
        )
    }

    #[test]
    fn tuning_learns_both_kinds_of_task_and_keeps_the_best_epoch() {
        let (activations, examples) = toy(600, 1);
        let (train, dev) = examples.split_at(480);
        let dev = dev.to_vec();
        let options = TuneOptions {
            max_epochs: 8,
            patience: 8,
            learning_rate: 3e-3,
            head_learning_rate: 1e-2,
            dropout: 0.0,
            ..Default::default()
        };
        let model = model(2);
        let before = accuracy(
            &predict(&model, &tasks(), &activations, &dev, &options).unwrap(),
            &dev,
        );
        let score = |p: &Predictions| {
            let (a, b) = accuracy(p, &dev);
            ((a + b) / 2.0, vec![a, b])
        };
        let mut steps = 0;
        let tuned = tune(
            &model,
            &tasks(),
            &activations,
            train,
            &dev,
            &options,
            &score,
            &mut |p| {
                assert!(p.step <= p.steps && p.loss.is_finite());
                steps += 1;
            },
        )
        .unwrap();
        assert!(steps > 0);
        let after = accuracy(
            &predict(&model, &tasks(), &activations, &dev, &options).unwrap(),
            &dev,
        );
        assert!(
            after.0 > 0.85 && after.1 > 0.75,
            "before {before:?}, after {after:?}"
        );
        // The model holds the best epoch's weights, and the record says which it was.
        let best = tuned
            .history
            .iter()
            .map(|r| r.dev_score)
            .fold(f64::MIN, f64::max);
        let kept = tuned
            .history
            .iter()
            .find(|r| r.epoch == tuned.best_epoch)
            .unwrap();
        assert_eq!(kept.dev_score, best);
        assert!(((after.0 + after.1) / 2.0 - best).abs() < 1e-9);
        assert!(tuned.history[0].train_loss > tuned.history.last().unwrap().train_loss);
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let (activations, examples) = toy(120, 4);
        let options = TuneOptions {
            max_epochs: 2,
            ..Default::default()
        };
        let run = || {
            let model = model(9);
            tune(
                &model,
                &tasks(),
                &activations,
                &examples,
                &examples,
                &options,
                &|_| (0.0, Vec::new()),
                &mut |_| {},
            )
            .unwrap();
            model
                .snapshot()
                .unwrap()
                .layers
                .iter()
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}

//! The signal branch: the encoder's top layers fine-tuned for the signals, beside the
//! general ones.
//!
//! ```text
//!   tokens ─▶ embeddings ─▶ layers 0 … from−1 (shared) ─┬─▶ layers from … 11 ─▶ mean, L2 ─▶ vector (search, similar customers)
//!                                                        └─▶ tuned layers    ─▶ mean     ─▶ signal heads
//! ```
//!
//! One pass over the shared layers feeds both tops, so the general vector is exactly
//! what it was and the signals cost only the tuned layers. The artefact is
//! `models/heads/signal-branch.safetensors` (the tuned layers under Hugging Face names,
//! f16, and one linear head per task, `head.<task>.weight|bias`) with its card
//! `signal-branch.json` (data, splits, options, every epoch's dev figures, the sweep that
//! chose the depth and learning rate, and the test figures). `rapport train --signal all`
//! makes both (`tune.rs` on the activations cached by `activations.rs`); the committed
//! pair is compiled into the binary.

pub mod activations;
pub mod layer;
pub mod recipe;
pub mod tune;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::encoder::BranchLayers;
use crate::heads::Evaluation;
use crate::weights::{StoredData, StoredTensor, Weights};
use tune::{EpochRecord, Task, TaskKind, TuneOptions};

/// The artefact's base name under `models/heads/` (or `models.heads`).
pub const FILE_STEM: &str = "signal-branch";

/// One labelled source the branch was trained on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BranchData {
    /// The source as the recipe names it (`corpus:…`, `wheel:…`, `team:…`).
    pub source: String,
    pub task: String,
    /// Examples per split (`train`, `dev`, `test`) as the recipe assigned them.
    pub splits: BTreeMap<String, usize>,
    /// Each training example's loss weight.
    pub weight: f32,
}

/// One configuration tried while choosing the depth and learning rate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BranchCandidate {
    pub layers: usize,
    pub learning_rate: f64,
    pub dev_score: f64,
    pub best_epoch: usize,
    pub note: String,
}

/// A task's head as the card describes it; for labels, the threshold each one is
/// flagged at, where the trained output replaces the phrase prototypes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskCard {
    #[serde(flatten)]
    pub task: Task,
    /// Labels only: per label the trained output is used for, its threshold.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, f32>,
}

/// What the committed branch is: the card written beside its weights.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BranchCard {
    pub encoder: String,
    pub dims: usize,
    /// The matmul kind of the shared layers whose activations it was trained on.
    pub matmul: String,
    /// The first tuned layer; the branch replaces layers `from_layer..` of the encoder.
    pub from_layer: usize,
    pub layers: usize,
    pub tasks: Vec<TaskCard>,
    pub data: Vec<BranchData>,
    /// How every source was split into train, dev and test.
    pub split: String,
    pub options: TuneOptions,
    pub candidates: Vec<BranchCandidate>,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub evaluations: Vec<Evaluation>,
    /// UTC, RFC 3339.
    pub trained_at: String,
    pub rapport_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {problem}")]
    Invalid { what: String, problem: String },
    #[error(
        "no signal branch in {dir}: train one with `rapport train --signal all` (or unset models.heads to use the built-in one)"
    )]
    Missing { dir: PathBuf },
}

/// A head of the branch, ready to read signal vectors.
#[derive(Debug, Clone)]
pub struct BranchHead {
    pub card: TaskCard,
    weight: Tensor,
    bias: Tensor,
}

impl BranchHead {
    pub fn name(&self) -> &str {
        &self.card.task.name
    }

    pub fn outputs(&self) -> &[String] {
        self.card.task.kind.outputs()
    }

    /// Per vector, the task's probabilities: softmax over classes, or sigmoid per label.
    pub fn probabilities(&self, signals: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        if signals.is_empty() {
            return Ok(Vec::new());
        }
        let x = crate::train::matrix(signals.iter(), self.weight.dim(1)?)?;
        let logits = layer::linear(&x, &self.weight, &self.bias)?;
        match self.card.task.kind {
            TaskKind::Classes { .. } => candle_nn::ops::softmax_last_dim(&logits)?,
            TaskKind::Labels { .. } => candle_nn::ops::sigmoid(&logits)?,
        }
        .to_vec2::<f32>()
    }
}

/// The loaded branch: its card, its layers for the encoder, its heads.
#[derive(Clone)]
pub struct SignalBranch {
    pub card: BranchCard,
    layers: Arc<Weights>,
    heads: Vec<BranchHead>,
}

/// The branch committed under `models/heads/`, compiled in.
const BUILT_IN: Option<(&[u8], &str)> = Some((
    include_bytes!("../../heads/signal-branch.safetensors"),
    include_str!("../../heads/signal-branch.json"),
));

/// The tuned layers' tensors in `layer::TENSOR_NAMES` order → Hugging Face names and
/// tensors (the fused query/key/value split back into three).
pub fn layer_tensors(
    from: usize,
    layers: &[Vec<Tensor>],
) -> candle_core::Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for (j, tensors) in layers.iter().enumerate() {
        for (name, tensor) in layer::TENSOR_NAMES.iter().zip(tensors) {
            let names = layer::source_names(from + j, name);
            let rows = tensor.dim(0)? / names.len();
            for (at, hf) in names.into_iter().enumerate() {
                out.push((hf, tensor.narrow(0, at * rows, rows)?.contiguous()?));
            }
        }
    }
    Ok(out)
}

impl SignalBranch {
    /// From a trained snapshot: `layers[j]` the tensors of tuned layer `from + j`,
    /// `heads[t]` task `t`'s (weight, bias).
    pub fn new(
        card: BranchCard,
        layers: &[Vec<Tensor>],
        heads: &[(Tensor, Tensor)],
    ) -> Result<SignalBranch, BranchError> {
        let invalid = |problem: String| BranchError::Invalid {
            what: "the trained branch".into(),
            problem,
        };
        let mut tensors: HashMap<String, Tensor> = layer_tensors(card.from_layer, layers)
            .map_err(|e| invalid(e.to_string()))?
            .into_iter()
            .collect();
        for (task, (w, b)) in card.tasks.iter().zip(heads) {
            tensors.insert(format!("head.{}.weight", task.task.name), w.clone());
            tensors.insert(format!("head.{}.bias", task.task.name), b.clone());
        }
        SignalBranch::from_tensors("the trained branch", card, tensors)
    }

    /// The branch compiled into this binary, if one was committed.
    pub fn built_in() -> Option<Result<SignalBranch, BranchError>> {
        BUILT_IN.map(|(weights, card)| {
            SignalBranch::from_parts("built-in signal branch", weights, card)
        })
    }

    /// `<dir>/signal-branch.safetensors` with its card `<dir>/signal-branch.json`.
    pub fn load(dir: &Path) -> Result<SignalBranch, BranchError> {
        let weights_path = dir.join(format!("{FILE_STEM}.safetensors"));
        let card_path = dir.join(format!("{FILE_STEM}.json"));
        if !weights_path.exists() {
            return Err(BranchError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| BranchError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let weights = read(&weights_path)?;
        let card = String::from_utf8_lossy(&read(&card_path)?).into_owned();
        SignalBranch::from_parts(&weights_path.display().to_string(), &weights, &card)
    }

    fn from_parts(what: &str, weights: &[u8], card: &str) -> Result<SignalBranch, BranchError> {
        let invalid = |problem: String| BranchError::Invalid {
            what: what.to_string(),
            problem,
        };
        let card: BranchCard =
            serde_json::from_str(card).map_err(|e| invalid(format!("unreadable card: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
            .map_err(|e| invalid(format!("unreadable weights: {e}")))?;
        SignalBranch::from_tensors(what, card, tensors)
    }

    fn from_tensors(
        what: &str,
        card: BranchCard,
        tensors: HashMap<String, Tensor>,
    ) -> Result<SignalBranch, BranchError> {
        let invalid = |problem: String| BranchError::Invalid {
            what: what.to_string(),
            problem,
        };
        let f32_tensor = |name: &str| -> Result<Tensor, BranchError> {
            tensors
                .get(name)
                .ok_or_else(|| invalid(format!("no tensor {name}")))?
                .to_dtype(DType::F32)
                .map_err(|e| invalid(format!("{name}: {e}")))
        };
        let mut stored = HashMap::new();
        for j in 0..card.layers {
            for name in layer::TENSOR_NAMES {
                for hf in layer::source_names(card.from_layer + j, name) {
                    let t = f32_tensor(&hf)?;
                    let shape = t.dims().to_vec();
                    let values = t
                        .flatten_all()
                        .and_then(|t| t.to_vec1::<f32>())
                        .map_err(|e| invalid(format!("{hf}: {e}")))?;
                    stored.insert(
                        hf,
                        StoredTensor {
                            shape,
                            data: StoredData::F32(values),
                        },
                    );
                }
            }
        }
        let heads = card
            .tasks
            .iter()
            .map(|task| {
                let weight = f32_tensor(&format!("head.{}.weight", task.task.name))?;
                let bias = f32_tensor(&format!("head.{}.bias", task.task.name))?;
                let outputs = task.task.kind.outputs().len();
                if weight.dims() != [outputs, card.dims] || bias.dims() != [outputs] {
                    return Err(invalid(format!(
                        "head {} is {:?} with bias {:?}; the card names {outputs} outputs of {} inputs",
                        task.task.name,
                        weight.dims(),
                        bias.dims(),
                        card.dims
                    )));
                }
                for label in task.thresholds.keys() {
                    if !task.task.kind.outputs().contains(label) {
                        return Err(invalid(format!(
                            "a threshold for {label:?}, which head {} does not output",
                            task.task.name
                        )));
                    }
                }
                Ok(BranchHead {
                    card: task.clone(),
                    weight,
                    bias,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(SignalBranch {
            layers: Arc::new(Weights::from_map(what, stored)),
            card,
            heads,
        })
    }

    /// Writes `<dir>/signal-branch.safetensors` (layers and heads in f16) and its card.
    pub fn save(&self, dir: &Path) -> Result<(), BranchError> {
        std::fs::create_dir_all(dir).map_err(|source| BranchError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let weights_path = dir.join(format!("{FILE_STEM}.safetensors"));
        let write_error = |e: candle_core::Error| BranchError::Write {
            path: weights_path.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for j in 0..self.card.layers {
            for name in layer::TENSOR_NAMES {
                for hf in layer::source_names(self.card.from_layer + j, name) {
                    let stored = self.layers.get(&hf).map_err(|e| BranchError::Invalid {
                        what: "the branch".into(),
                        problem: e.to_string(),
                    })?;
                    let t = Tensor::from_vec(stored.to_f32(), stored.shape.clone(), &Device::Cpu)
                        .and_then(|t| t.to_dtype(DType::F16))
                        .map_err(write_error)?;
                    tensors.insert(hf, t);
                }
            }
        }
        for head in &self.heads {
            let name = head.name();
            tensors.insert(
                format!("head.{name}.weight"),
                head.weight.to_dtype(DType::F16).map_err(write_error)?,
            );
            tensors.insert(
                format!("head.{name}.bias"),
                head.bias.to_dtype(DType::F16).map_err(write_error)?,
            );
        }
        candle_core::safetensors::save(&tensors, &weights_path).map_err(write_error)?;
        let card_path = dir.join(format!("{FILE_STEM}.json"));
        let mut card = serde_json::to_string_pretty(&self.card).expect("cards serialise");
        card.push('\n');
        std::fs::write(&card_path, card).map_err(|source| BranchError::Write {
            path: card_path,
            source,
        })
    }

    /// What the encoder loads to run the branch.
    pub fn encoder_layers(&self) -> BranchLayers {
        BranchLayers {
            from: self.card.from_layer,
            count: self.card.layers,
            weights: self.layers.clone(),
        }
    }

    pub fn heads(&self) -> &[BranchHead] {
        &self.heads
    }

    pub fn head(&self, task: &str) -> Option<&BranchHead> {
        self.heads.iter().find(|h| h.name() == task)
    }

    /// Refuses an encoder other than the one the branch was tuned from.
    pub fn check_encoder(&self, encoder: &str) -> Result<(), BranchError> {
        if encoder == self.card.encoder {
            Ok(())
        } else {
            Err(BranchError::Invalid {
                what: "the signal branch".into(),
                problem: format!(
                    "was tuned from {}, not {encoder}; use --encoder {} or retrain it",
                    self.card.encoder, self.card.encoder
                ),
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::MatmulKind;
    use crate::kernels::simd::Isa;
    use crate::packed::{BertConfig, PackedBert};
    use crate::train::Rng;
    use activations::Activations;

    pub(crate) const HIDDEN: usize = 64;
    const HEADS: usize = 4;
    const INTERMEDIATE: usize = 128;
    const LAYERS: usize = 3;
    const VOCAB: usize = 50;

    pub(crate) fn config() -> BertConfig {
        serde_json::from_value(serde_json::json!({
            "hidden_size": HIDDEN,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "intermediate_size": INTERMEDIATE,
            "max_position_embeddings": 64,
            "layer_norm_eps": 1e-12,
            "hidden_act": "gelu",
        }))
        .unwrap()
    }

    fn random(rng: &mut Rng, shape: &[usize], scale: f32) -> StoredTensor {
        let n = shape.iter().product();
        StoredTensor {
            shape: shape.to_vec(),
            data: StoredData::F32(
                (0..n)
                    .map(|_| (rng.unit() as f32 * 2.0 - 1.0) * scale)
                    .collect(),
            ),
        }
    }

    fn ones(n: usize) -> StoredTensor {
        StoredTensor {
            shape: vec![n],
            data: StoredData::F32(vec![1.0; n]),
        }
    }

    /// Layer `l`'s tensors under Hugging Face names, random.
    fn layer(rng: &mut Rng, l: usize, into: &mut HashMap<String, StoredTensor>) {
        let p = format!("encoder.layer.{l}");
        for (name, out, input) in [
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", INTERMEDIATE, HIDDEN),
            ("output.dense", HIDDEN, INTERMEDIATE),
        ] {
            into.insert(
                format!("{p}.{name}.weight"),
                random(rng, &[out, input], 0.3),
            );
            into.insert(format!("{p}.{name}.bias"), random(rng, &[out], 0.1));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            into.insert(format!("{p}.{norm}.weight"), ones(HIDDEN));
            into.insert(format!("{p}.{norm}.bias"), random(rng, &[HIDDEN], 0.1));
        }
    }

    /// A small random BERT, and a random "tuned" copy of its top layer.
    pub(crate) fn tiny_bert(seed: u64) -> (Weights, Weights) {
        let mut rng = Rng::new(seed);
        let mut tensors = HashMap::new();
        tensors.insert(
            "embeddings.word_embeddings.weight".into(),
            random(&mut rng, &[VOCAB, HIDDEN], 1.0),
        );
        tensors.insert(
            "embeddings.position_embeddings.weight".into(),
            random(&mut rng, &[64, HIDDEN], 0.2),
        );
        tensors.insert(
            "embeddings.token_type_embeddings.weight".into(),
            random(&mut rng, &[2, HIDDEN], 0.1),
        );
        tensors.insert("embeddings.LayerNorm.weight".into(), ones(HIDDEN));
        tensors.insert(
            "embeddings.LayerNorm.bias".into(),
            random(&mut rng, &[HIDDEN], 0.1),
        );
        for l in 0..LAYERS {
            layer(&mut rng, l, &mut tensors);
        }
        let mut tuned = HashMap::new();
        layer(&mut rng, LAYERS - 1, &mut tuned);
        (
            Weights::from_map("tiny", tensors),
            Weights::from_map("tiny tuned", tuned),
        )
    }

    fn texts() -> (Vec<u32>, Vec<usize>) {
        let lengths = vec![5, 9, 1, 14];
        let mut rng = Rng::new(3);
        let ids = (0..lengths.iter().sum::<usize>())
            .map(|_| (rng.next_u64() % VOCAB as u64) as u32)
            .collect();
        (ids, lengths)
    }

    #[test]
    fn the_packed_branch_computes_what_the_trained_layer_computes() {
        let (weights, tuned) = tiny_bert(11);
        let mut model =
            PackedBert::load(weights, &config(), MatmulKind::F32, None, Isa::detected()).unwrap();
        let (ids, lengths) = texts();
        let plain = model.forward(&ids, &lengths).unwrap();
        model.load_branch(&tuned, LAYERS - 1, 1, None).unwrap();
        let crate::packed::WithSignals { vectors, signals } =
            model.forward_with_signals(&ids, &lengths).unwrap();
        assert_eq!(vectors, plain, "the branch leaves the general vector alone");

        // The same from the hidden state after the shared layers, through candle's layer.
        let hidden = model.hidden_after(&ids, &lengths, LAYERS - 1).unwrap();
        let mut start = 0;
        let rows: Vec<Vec<f32>> = lengths
            .iter()
            .map(|&len| {
                let r = hidden[start * HIDDEN..(start + len) * HIDDEN].to_vec();
                start += len;
                r
            })
            .collect();
        let activations = Activations::from_rows(HIDDEN, rows);
        let trainable =
            layer::TrainableLayer::from_weights(&tuned, LAYERS - 1, HEADS, 1e-12).unwrap();
        let batch = activations.batch(&[0, 1, 2, 3], 64).unwrap();
        let out = trainable
            .forward(&batch.hidden, &batch.attention_mask, &mut |t| Ok(t.clone()))
            .unwrap()
            .broadcast_mul(&batch.pool)
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (packed, candle) in signals.iter().zip(&out) {
            for (a, b) in packed.iter().zip(candle) {
                // f16 activations in between: a few thousandths at most.
                assert!((a - b).abs() < 0.02, "{a} vs {b}");
            }
        }
        assert_ne!(signals[0], out[1], "texts are told apart");
    }

    #[test]
    fn a_branch_must_end_at_the_top_and_signals_need_one() {
        let (weights, tuned) = tiny_bert(5);
        let mut model =
            PackedBert::load(weights, &config(), MatmulKind::F32, None, Isa::detected()).unwrap();
        let (ids, lengths) = texts();
        assert!(model.forward_with_signals(&ids, &lengths).is_err());
        let err = model.load_branch(&tuned, 0, 1, None).unwrap_err();
        assert!(err.contains("does not end where"), "{err}");
        assert!(model.hidden_after(&ids, &lengths, LAYERS + 1).is_err());
    }

    fn card(tasks: Vec<Task>) -> BranchCard {
        BranchCard {
            encoder: "tiny".into(),
            dims: HIDDEN,
            matmul: "f32".into(),
            from_layer: LAYERS - 1,
            layers: 1,
            tasks: tasks
                .into_iter()
                .map(|task| TaskCard {
                    task,
                    thresholds: BTreeMap::new(),
                })
                .collect(),
            data: Vec::new(),
            split: String::new(),
            options: TuneOptions::default(),
            candidates: Vec::new(),
            history: Vec::new(),
            best_epoch: 1,
            evaluations: Vec::new(),
            trained_at: String::new(),
            rapport_version: String::new(),
        }
    }

    #[test]
    fn a_saved_branch_loads_back_and_classifies_the_same() {
        let (_, tuned) = tiny_bert(7);
        let tasks = vec![
            Task {
                name: "sentiment".into(),
                kind: TaskKind::Classes {
                    classes: vec!["negative".into(), "neutral".into(), "positive".into()],
                },
            },
            Task {
                name: "labels".into(),
                kind: TaskKind::Labels {
                    labels: vec!["hype".into(), "novelty".into()],
                },
            },
        ];
        let trainable =
            layer::TrainableLayer::from_weights(&tuned, LAYERS - 1, HEADS, 1e-12).unwrap();
        let model =
            tune::BranchModel::new(vec![trainable], &tasks, HIDDEN, &mut Rng::new(1)).unwrap();
        let snapshot = model.snapshot().unwrap();
        let heads: Vec<(Tensor, Tensor)> = snapshot
            .heads
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let mut card = card(tasks);
        card.tasks[1].thresholds.insert("hype".into(), 0.4);
        let branch =
            SignalBranch::new(card, std::slice::from_ref(&snapshot.layers), &heads).unwrap();
        let dir = tempfile::tempdir().unwrap();
        branch.save(dir.path()).unwrap();
        let loaded = SignalBranch::load(dir.path()).unwrap();
        assert_eq!(loaded.card.tasks[1].thresholds["hype"], 0.4);
        let x = vec![vec![0.3; HIDDEN], vec![-0.2; HIDDEN]];
        for (a, b) in branch.heads().iter().zip(loaded.heads()) {
            let (pa, pb) = (a.probabilities(&x).unwrap(), b.probabilities(&x).unwrap());
            for (ra, rb) in pa.iter().zip(&pb) {
                for (va, vb) in ra.iter().zip(rb) {
                    assert!((va - vb).abs() < 2e-3, "f16 storage: {va} vs {vb}");
                }
            }
        }
        let sentiment = loaded.head("sentiment").unwrap().probabilities(&x).unwrap();
        assert!(
            (sentiment[0].iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "softmax"
        );
        let labels = loaded.head("labels").unwrap().probabilities(&x).unwrap();
        assert!(labels[0].iter().all(|p| (0.0..=1.0).contains(p)), "sigmoid");
        // The layers go to the encoder under their Hugging Face names.
        let layers = loaded.encoder_layers();
        assert_eq!((layers.from, layers.count), (LAYERS - 1, 1));
        assert!(
            layers
                .weights
                .get("encoder.layer.2.attention.self.key.weight")
                .is_ok()
        );
        assert!(loaded.check_encoder("e5-small").is_err());
        let missing = SignalBranch::load(&dir.path().join("none"))
            .err()
            .expect("no branch there")
            .to_string();
        assert!(missing.contains("rapport train --signal all"), "{missing}");
    }
}

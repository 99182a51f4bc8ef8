//! A BERT-family sentence encoder: tokenise (with the model's prefix), batch by token
//! budget, run the model, mean-pool over real tokens, L2 normalise.
//!
//! Two backends: on CPU, Rapport's packed BERT (`packed.rs`: no padding at all, fused
//! kernels, F32 or quantised matmuls); on a GPU, candle-transformers' BERT over padded
//! batches with an attention mask. Either way padding never changes a vector.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::catalogue::ModelSpec;
use crate::kernels::MatmulKind;
use crate::kernels::simd::Isa;
use crate::packed::{BertConfig, InputMaxima, PackedBert};
use crate::weights::Weights;

pub use crate::error::ModelError;

/// Vectors in input order, with what it took to make them.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens run through the model (special tokens included, padding excluded).
    pub tokens: usize,
    /// Inputs cut at the model's maximum length.
    pub truncated: usize,
    /// Forward passes (batches) run.
    pub batches: usize,
    /// Wall-clock seconds of each forward pass, in the order run.
    pub batch_seconds: Vec<f64>,
    /// The signal branch's vector per text, in input order
    /// ([`Encoder::embed_with_signals`]); empty otherwise.
    pub signals: Vec<Vec<f32>>,
}

/// The signal branch's layers as the encoder loads them: tuned copies of its top `count`
/// layers, which read the hidden state after layer `from` (`signal_branch`).
#[derive(Clone)]
pub struct BranchLayers {
    pub from: usize,
    pub count: usize,
    /// Under Hugging Face names, `encoder.layer.<from>…` to the last layer.
    pub weights: std::sync::Arc<Weights>,
}

impl std::fmt::Debug for BranchLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BranchLayers {{ from: {}, count: {} }}",
            self.from, self.count
        )
    }
}

/// How to run an encoder: `[models]` in the config.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub device: Device,
    /// Inference threads; 0 = one per core.
    pub threads: usize,
    /// Dense-layer arithmetic on CPU (a GPU always runs F32); None: the model's fastest
    /// kind that matches its references on these kernels (`ModelSpec::auto_matmul`).
    pub matmul: Option<MatmulKind>,
    /// Use candle-transformers' BERT over padded batches even on CPU: the GPU backend,
    /// so that tests exercise it on machines without one.
    pub padded: bool,
    /// The widest CPU kernels to use (`models.simd`); None: the CPU's widest.
    pub simd: Option<crate::kernels::simd::Isa>,
    /// The signal branch to run beside the encoder's own top layers (packed backend).
    pub branch: Option<BranchLayers>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            device: Device::Cpu,
            threads: 0,
            matmul: None,
            padded: false,
            simd: None,
            branch: None,
        }
    }
}

enum Backend {
    Packed(PackedBert),
    Padded(BertModel),
}

pub struct Encoder {
    spec: &'static ModelSpec,
    backend: Backend,
    tokenizer: Tokenizer,
    pad_id: u32,
    device: Device,
    /// Inference runs here, so `models.threads` bounds the cores it takes from the rest
    /// of the daemon (candle's kernels run on the current rayon pool).
    pool: rayon::ThreadPool,
}

impl Encoder {
    /// Loads an imported model from `models_dir/<name>/`.
    pub fn load(
        spec: &'static ModelSpec,
        models_dir: &Path,
        options: &EncoderOptions,
    ) -> Result<Encoder, ModelError> {
        let dir = models_dir.join(spec.name);
        let weights = Weights::imported(spec, models_dir)?;
        let file_error = |path: &Path, problem: String| ModelError::File {
            path: path.to_path_buf(),
            problem,
        };
        let isa = Isa::chosen(options.simd);
        let matmul = options.matmul.unwrap_or(spec.auto_matmul(isa));
        if let Some(why) = spec.refusal(matmul, isa) {
            let allowed: Vec<&str> = MatmulKind::ALL
                .iter()
                .filter(|kind| spec.refusal(**kind, isa).is_none())
                .map(|kind| kind.name())
                .collect();
            return Err(ModelError::Unsupported(format!(
                "models.matmul = \"{}\" changes {}'s vectors ({why} to the reference); use auto or {}",
                matmul.name(),
                spec.name,
                allowed.join(", ")
            )));
        }
        let config_path = dir.join("config.json");
        let config_bytes =
            std::fs::read(&config_path).map_err(|e| file_error(&config_path, e.to_string()))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| file_error(&tokenizer_path, e.to_string()))?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("<pad>"))
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(0);
        // Padding is Rapport's job (within a batch only); truncation at the model's limit.
        tokenizer.with_padding(None::<PaddingParams>);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .thread_name(|i| format!("rapport-encoder-{i}"))
            .build()
            .map_err(|e| ModelError::Tokenizer(format!("cannot start inference threads: {e}")))?;
        let device = &options.device;
        let backend = if device.is_cpu() && !options.padded {
            let config: BertConfig = serde_json::from_slice(&config_bytes)
                .map_err(|e| file_error(&config_path, format!("not a BERT config: {e}")))?;
            let (weights, calibration) = if matmul == MatmulKind::Int8 {
                // An f32 copy of the model shows the int8 one its input ranges; it is
                // dropped before the weights are read again for the int8 copy, which
                // bounds peak memory.
                let mut reference = PackedBert::load(weights, &config, MatmulKind::F32, None, isa)
                    .map_err(|problem| file_error(&dir, problem))?;
                if let Some(branch) = &options.branch {
                    reference
                        .load_branch(&branch.weights, branch.from, branch.count, None)
                        .map_err(|problem| file_error(&dir, problem))?;
                }
                let maxima = calibrate(&reference, &tokenizer, spec, &pool)?;
                drop(reference);
                (Weights::imported(spec, models_dir)?, Some(maxima))
            } else {
                (weights, None)
            };
            let mut model = PackedBert::load(weights, &config, matmul, calibration.as_ref(), isa)
                .map_err(|problem| file_error(&dir, problem))?;
            if let Some(branch) = &options.branch {
                model
                    .load_branch(
                        &branch.weights,
                        branch.from,
                        branch.count,
                        calibration.as_ref(),
                    )
                    .map_err(|problem| file_error(&dir, problem))?;
            }
            Backend::Packed(model)
        } else {
            if options.branch.is_some() {
                return Err(ModelError::Unsupported(format!(
                    "the signal branch runs on the CPU's packed backend only; {} was asked for the padded one (models.device or models.padded)",
                    spec.name
                )));
            }
            let config: Config = serde_json::from_slice(&config_bytes)
                .map_err(|e| file_error(&config_path, format!("not a BERT config: {e}")))?;
            let vb = VarBuilder::from_tensors(weights.to_tensors(device)?, DType::F32, device);
            Backend::Padded(BertModel::load(vb, &config)?)
        };
        Ok(Encoder {
            spec,
            backend,
            tokenizer,
            pad_id,
            device: device.clone(),
            pool,
        })
    }

    pub fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    /// What the dense layers compute in: the configured kind on CPU, F32 on a GPU.
    pub fn matmul(&self) -> MatmulKind {
        match &self.backend {
            Backend::Packed(model) => model.matmul,
            Backend::Padded(_) => MatmulKind::F32,
        }
    }

    /// The CPU kernels in use; None on a GPU or the padded backend.
    pub fn simd(&self) -> Option<Isa> {
        match &self.backend {
            Backend::Packed(model) => Some(model.isa),
            Backend::Padded(_) => None,
        }
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Embeds `texts`, sorted by length into batches of at most `max_batch_tokens` padded
    /// tokens (a single longer text still forms a batch of its own).
    pub fn embed(&self, texts: &[&str], max_batch_tokens: usize) -> Result<Embedded, ModelError> {
        self.run(texts, self.spec.prefix, max_batch_tokens, false)
    }

    /// [`Encoder::embed`] in the model's document role (`passage: ` for e5), for
    /// measuring asymmetric search; what Rapport stores is always [`Encoder::embed`]'s.
    pub fn embed_passages(
        &self,
        texts: &[&str],
        max_batch_tokens: usize,
    ) -> Result<Embedded, ModelError> {
        self.run(texts, self.spec.passage_prefix, max_batch_tokens, false)
    }

    /// [`Encoder::embed`], plus each text's signal-branch vector (`Embedded::signals`)
    /// from the same pass over the shared layers. Fails without a loaded branch.
    pub fn embed_with_signals(
        &self,
        texts: &[&str],
        max_batch_tokens: usize,
    ) -> Result<Embedded, ModelError> {
        if !self.has_branch() {
            return Err(ModelError::Unsupported(format!(
                "{} was loaded without a signal branch",
                self.spec.name
            )));
        }
        self.run(texts, self.spec.prefix, max_batch_tokens, true)
    }

    /// Whether a signal branch is loaded.
    pub fn has_branch(&self) -> bool {
        matches!(&self.backend, Backend::Packed(model) if model.has_branch())
    }

    /// Each text's token ids (with the model's prefix, truncated at its limit), as the
    /// encoder runs them.
    pub fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        Ok(self
            .encode(texts, self.spec.prefix)?
            .iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// The hidden state after the first `layers` layers for texts given as token ids
    /// ([`Encoder::token_ids`]): per text, one row of `dims` values per token. What the
    /// signal branch is fine-tuned on (packed backend only).
    pub fn hidden_after(
        &self,
        ids: &[Vec<u32>],
        layers: usize,
        max_batch_tokens: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let Backend::Packed(model) = &self.backend else {
            return Err(ModelError::Unsupported(
                "hidden states come from the CPU's packed backend only".into(),
            ));
        };
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let dims = self.spec.dims;
        let mut out = vec![Vec::new(); ids.len()];
        for batch in packed_batches(&lengths, max_batch_tokens) {
            let flat: Vec<u32> = batch.iter().flat_map(|&i| ids[i].iter().copied()).collect();
            let batch_lengths: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
            let hidden = self
                .pool
                .install(|| model.hidden_after(&flat, &batch_lengths, layers))
                .map_err(ModelError::Inference)?;
            let mut start = 0;
            for &i in &batch {
                let end = start + lengths[i] * dims;
                out[i] = hidden[start..end].to_vec();
                start = end;
            }
        }
        Ok(out)
    }

    fn encode(
        &self,
        texts: &[&str],
        prefix: &str,
    ) -> Result<Vec<tokenizers::Encoding>, ModelError> {
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    fn run(
        &self,
        texts: &[&str],
        prefix: &str,
        max_batch_tokens: usize,
        with_signals: bool,
    ) -> Result<Embedded, ModelError> {
        let encodings = self.encode(texts, prefix)?;
        let mut embedded = Embedded {
            vectors: vec![Vec::new(); texts.len()],
            signals: if with_signals {
                vec![Vec::new(); texts.len()]
            } else {
                Vec::new()
            },
            truncated: encodings
                .iter()
                .filter(|e| !e.get_overflowing().is_empty())
                .count(),
            ..Default::default()
        };
        let lengths: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        embedded.tokens = lengths.iter().sum();
        let batches = match self.backend {
            Backend::Packed(_) => packed_batches(&lengths, max_batch_tokens),
            Backend::Padded(_) => token_budget_batches(&lengths, max_batch_tokens),
        };
        for batch in batches {
            let started = std::time::Instant::now();
            let (vectors, signals) = match &self.backend {
                Backend::Packed(model) => {
                    let ids: Vec<u32> = batch
                        .iter()
                        .flat_map(|&i| encodings[i].get_ids().iter().copied())
                        .collect();
                    let batch_lengths: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
                    self.pool
                        .install(|| {
                            if with_signals {
                                model
                                    .forward_with_signals(&ids, &batch_lengths)
                                    .map(|out| (out.vectors, out.signals))
                            } else {
                                model.forward(&ids, &batch_lengths).map(|v| (v, Vec::new()))
                            }
                        })
                        .map_err(ModelError::Inference)?
                }
                Backend::Padded(model) => {
                    let width = batch.iter().map(|&i| lengths[i]).max().unwrap_or(0);
                    let mut ids = Vec::with_capacity(batch.len() * width);
                    let mut mask = Vec::with_capacity(batch.len() * width);
                    for &i in &batch {
                        let real = encodings[i].get_ids();
                        ids.extend_from_slice(real);
                        ids.extend(std::iter::repeat_n(self.pad_id, width - real.len()));
                        mask.extend(std::iter::repeat_n(1u32, real.len()));
                        mask.extend(std::iter::repeat_n(0u32, width - real.len()));
                    }
                    let vectors = self
                        .pool
                        .install(|| self.forward_padded(model, ids, mask, batch.len(), width))?;
                    (vectors, Vec::new())
                }
            };
            embedded.batch_seconds.push(started.elapsed().as_secs_f64());
            for (&i, vector) in batch.iter().zip(vectors) {
                embedded.vectors[i] = vector;
            }
            for (&i, signal) in batch.iter().zip(signals) {
                embedded.signals[i] = signal;
            }
            embedded.batches += 1;
        }
        Ok(embedded)
    }

    fn forward_padded(
        &self,
        model: &BertModel,
        ids: Vec<u32>,
        mask: Vec<u32>,
        rows: usize,
        width: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let ids = Tensor::from_vec(ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = model.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

/// Team-written messages in Danish, Norwegian, Swedish and English, from two words to a
/// long complaint: what int8 smoothing is calibrated on (not the reference sentences the
/// tests compare against).
const CALIBRATION_TEXTS: &str = include_str!("calibration.txt");

/// The largest magnitude each dense input channel of `model` takes on the calibration
/// texts, in one packed forward pass (a few hundred milliseconds).
fn calibrate(
    model: &PackedBert,
    tokenizer: &Tokenizer,
    spec: &ModelSpec,
    pool: &rayon::ThreadPool,
) -> Result<InputMaxima, ModelError> {
    let inputs: Vec<String> = CALIBRATION_TEXTS
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| format!("{}{line}", spec.prefix))
        .collect();
    let encodings = tokenizer
        .encode_batch(inputs, true)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let ids: Vec<u32> = encodings
        .iter()
        .flat_map(|e| e.get_ids().iter().copied())
        .collect();
    let lengths: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
    let mut maxima = InputMaxima::default();
    pool.install(|| model.forward_observed(&ids, &lengths, &mut maxima))
        .map_err(|e| ModelError::Inference(format!("calibrating int8: {e}")))?;
    Ok(maxima)
}

/// Groups text indices into batches: longest first, each batch's `rows × longest` within
/// `budget` tokens. Sorting by length keeps padding small; a text over the budget alone
/// is its own batch.
pub fn token_budget_batches(lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    // Longest first, so the first text of a batch sets its width.
    longest_first_batches(lengths, budget, |longest, texts, _| longest * texts)
}

/// Groups text indices for the packed backend: longest first (similar lengths keep the
/// per-text attention work even), each batch's *real* tokens within `budget`; a text
/// over the budget alone is its own batch.
pub fn packed_batches(lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    longest_first_batches(lengths, budget, |_, _, tokens| tokens)
}

/// Text indices sorted longest first and cut into batches whose `cost(longest, texts,
/// real tokens)` stays within `budget`; a text that alone exceeds it is its own batch.
fn longest_first_batches(
    lengths: &[usize],
    budget: usize,
    cost: impl Fn(usize, usize, usize) -> usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for i in order {
        let longest = current.first().map_or(lengths[i], |&first| lengths[first]);
        if !current.is_empty() && cost(longest, current.len() + 1, tokens + lengths[i]) > budget {
            batches.push(std::mem::take(&mut current));
            tokens = 0;
        }
        tokens += lengths[i];
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_batches_count_real_tokens_only() {
        let lengths = [5, 300, 12, 12, 700, 40, 3];
        let batches = packed_batches(&lengths, 360);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        assert_eq!(batches[0], vec![4], "the over-budget text runs alone");
        assert_eq!(
            batches[1],
            vec![1, 5, 2],
            "300 + 40 + 12 real tokens fit in 360"
        );
        for batch in &batches[1..] {
            assert!(batch.iter().map(|&i| lengths[i]).sum::<usize>() <= 360);
        }
    }

    #[test]
    fn batches_stay_within_the_budget_and_cover_every_text() {
        let lengths = [5, 300, 12, 12, 700, 40, 3];
        let batches = token_budget_batches(&lengths, 600);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &batches {
            let width = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() == 1 || width * batch.len() <= 600, "{batch:?}");
        }
        assert_eq!(
            batches[0],
            vec![4],
            "the over-budget text runs alone, first"
        );
    }
}

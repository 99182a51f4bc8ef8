//! BERT on CPU over *packed* batches: the texts of a batch are laid end to end, one row
//! per real token, and every dense layer runs on that `tokens × hidden` matrix. Only
//! attention needs to know where a text starts and ends, and it runs per (text, head).
//! So no padding is ever computed and a text's vector cannot depend on its batch-mates,
//! which a padded batch only guarantees through its attention mask.
//!
//! Post-LN BERT with exact GELU, as in Hugging Face's `BertModel`; positions run from 0
//! per text, token type 0. The word table stays as stored (4-bit for e5) and only the
//! looked-up rows are expanded.

use rayon::prelude::*;

use crate::kernels::simd::Isa;
use crate::kernels::{self, Dense, MatmulKind};
use crate::weights::{StoredTensor, Weights};

/// Dimensions read from `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

fn default_eps() -> f64 {
    1e-12
}

/// The four dense layers of a BERT layer, by the input they read.
#[derive(Clone, Copy)]
enum DenseInput {
    /// The hidden state, into the fused query/key/value projection.
    Qkv,
    /// The attention context, into the attention output projection.
    AttentionOut,
    /// The hidden state after attention, into the FFN's first layer.
    Intermediate,
    /// The GELU activations, into the FFN's second layer.
    Output,
}

/// Per layer and dense input, the largest magnitude each input channel took while an f32
/// model embedded the calibration texts.
#[derive(Debug, Default, Clone)]
pub struct InputMaxima {
    layers: Vec<[Vec<f32>; 4]>,
}

impl InputMaxima {
    fn record(&mut self, layer: usize, input: DenseInput, rows: &[f32], width: usize) {
        if self.layers.len() <= layer {
            self.layers.resize_with(layer + 1, Default::default);
        }
        let maxima = &mut self.layers[layer][input as usize];
        maxima.resize(width, 0.0);
        for row in rows.chunks_exact(width) {
            for (m, v) in maxima.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
    }

    /// None where nothing was recorded for that input.
    fn get(&self, layer: usize, input: DenseInput) -> Option<&[f32]> {
        let maxima = &self.layers.get(layer)?[input as usize];
        (!maxima.is_empty()).then_some(&maxima[..])
    }
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: (Vec<f32>, Vec<f32>),
    intermediate: Dense,
    output: Dense,
    output_norm: (Vec<f32>, Vec<f32>),
}

fn get<'w>(w: &'w Weights, name: &str) -> Result<&'w StoredTensor, String> {
    w.get(name).map_err(|e| e.to_string())
}

fn norm(w: &Weights, prefix: &str) -> Result<(Vec<f32>, Vec<f32>), String> {
    Ok((
        get(w, &format!("{prefix}.weight"))?.to_f32(),
        get(w, &format!("{prefix}.bias"))?.to_f32(),
    ))
}

impl Layer {
    /// Layer `source` of `weights` (Hugging Face names), as layer `index` of the run:
    /// the index its int8 calibration was recorded under.
    fn load(
        weights: &Weights,
        source: usize,
        index: usize,
        matmul: MatmulKind,
        calibration: Option<&InputMaxima>,
        isa: Isa,
    ) -> Result<Layer, String> {
        let p = format!("encoder.layer.{source}");
        let dense = |names: &[String], input: DenseInput| -> Result<Dense, String> {
            let tensors = |part: &str| {
                names
                    .iter()
                    .map(|n| get(weights, &format!("{n}.{part}")))
                    .collect::<Result<Vec<_>, _>>()
            };
            let input_max = calibration.and_then(|c| c.get(index, input));
            Dense::new(
                &tensors("weight")?,
                &tensors("bias")?,
                matmul,
                input_max,
                isa,
            )
            .map_err(|e| format!("{}: {e}", names[0]))
        };
        let named = |parts: &[&str]| -> Vec<String> {
            parts.iter().map(|part| format!("{p}.{part}")).collect()
        };
        Ok(Layer {
            qkv: dense(
                &named(&[
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                ]),
                DenseInput::Qkv,
            )?,
            attention_out: dense(
                &named(&["attention.output.dense"]),
                DenseInput::AttentionOut,
            )?,
            attention_norm: norm(weights, &format!("{p}.attention.output.LayerNorm"))?,
            intermediate: dense(&named(&["intermediate.dense"]), DenseInput::Intermediate)?,
            output: dense(&named(&["output.dense"]), DenseInput::Output)?,
            output_norm: norm(weights, &format!("{p}.output.LayerNorm"))?,
        })
    }
}

/// The signal branch: tuned copies of the encoder's top layers, run on the hidden state
/// after layer `from` beside the encoder's own.
struct Branch {
    from: usize,
    layers: Vec<Layer>,
}

/// A pass with the signal branch: per text, its general vector and its signal vector.
pub struct WithSignals {
    pub vectors: Vec<Vec<f32>>,
    pub signals: Vec<Vec<f32>>,
}

/// What a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Vectors,
    Signals,
    HiddenAfter(usize),
}

#[derive(Default)]
struct RunOutput {
    vectors: Vec<Vec<f32>>,
    signals: Vec<Vec<f32>>,
    hidden: Vec<f32>,
}

/// Buffers a layer writes into, allocated once per pass.
struct Scratch {
    wide: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
}

pub struct PackedBert {
    hidden: usize,
    heads: usize,
    eps: f32,
    word: StoredTensor,
    positions: Vec<f32>,
    max_positions: usize,
    token_type: Vec<f32>,
    embedding_norm: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    branch: Option<Branch>,
    pub matmul: MatmulKind,
    /// The CPU kernels every step runs.
    pub isa: Isa,
}

impl PackedBert {
    /// `calibration`: the input maxima an f32 copy of the model recorded
    /// (`forward_observed`), which int8 layers are smoothed by.
    pub fn load(
        mut weights: Weights,
        config: &BertConfig,
        matmul: MatmulKind,
        calibration: Option<&InputMaxima>,
        isa: Isa,
    ) -> Result<PackedBert, String> {
        if let Some(act) = config.hidden_act.as_deref()
            && act != "gelu"
        {
            return Err(format!(
                "hidden_act {act:?} is not supported (only BERT's exact \"gelu\")"
            ));
        }
        let hidden = config.hidden_size;
        if !hidden.is_multiple_of(config.num_attention_heads) {
            return Err(format!(
                "hidden size {hidden} is not a multiple of {} heads",
                config.num_attention_heads
            ));
        }
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            layers.push(Layer::load(&weights, l, l, matmul, calibration, isa)?);
        }
        let vector = |w: &Weights, name: &str| get(w, name).map(|t| t.to_f32());
        let positions = vector(&weights, "embeddings.position_embeddings.weight")?;
        let token_type = vector(&weights, "embeddings.token_type_embeddings.weight")?;
        let embedding_norm = norm(&weights, "embeddings.LayerNorm")?;
        let word = weights
            .take("embeddings.word_embeddings.weight")
            .map_err(|e| e.to_string())?;
        if word.shape.len() != 2 || word.shape[1] != hidden {
            return Err(format!(
                "word embeddings have shape {:?}, expected [vocab, {hidden}]",
                word.shape
            ));
        }
        Ok(PackedBert {
            hidden,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            word,
            max_positions: positions.len() / hidden,
            positions,
            token_type: token_type[..hidden].to_vec(),
            embedding_norm,
            layers,
            branch: None,
            matmul,
            isa,
        })
    }

    /// Loads the signal branch: `count` layers (Hugging Face names `encoder.layer.<i>`,
    /// `i` from `from`) that replace the encoder's top layers on a second path. They read
    /// the hidden state after layer `from` of the shared encoder, so one pass over the
    /// shared layers feeds both tops. `calibration`: as for [`PackedBert::load`], recorded
    /// by an f32 copy that had the same branch.
    pub fn load_branch(
        &mut self,
        weights: &Weights,
        from: usize,
        count: usize,
        calibration: Option<&InputMaxima>,
    ) -> Result<(), String> {
        if count == 0 || from + count != self.layers.len() {
            return Err(format!(
                "a signal branch of {count} layers from layer {from} does not end where the encoder's {} layers do",
                self.layers.len()
            ));
        }
        let first_index = self.layers.len();
        let layers = (0..count)
            .map(|j| {
                Layer::load(
                    weights,
                    from + j,
                    first_index + j,
                    self.matmul,
                    calibration,
                    self.isa,
                )
            })
            .collect::<Result<_, _>>()?;
        self.branch = Some(Branch { from, layers });
        Ok(())
    }

    /// Whether a signal branch is loaded.
    pub fn has_branch(&self) -> bool {
        self.branch.is_some()
    }

    /// Embeds texts given as token ids laid end to end (`lengths` per text); returns one
    /// L2-normalised mean-pooled vector per text. Runs on the current rayon pool.
    pub fn forward(&self, ids: &[u32], lengths: &[usize]) -> Result<Vec<Vec<f32>>, String> {
        Ok(self.run(ids, lengths, None, Wanted::Vectors)?.vectors)
    }

    /// `forward`, plus each text's signal vector: the mean over its tokens of the signal
    /// branch's last hidden state (not normalised; the signal heads read it as trained).
    pub fn forward_with_signals(
        &self,
        ids: &[u32],
        lengths: &[usize],
    ) -> Result<WithSignals, String> {
        if self.branch.is_none() {
            return Err("no signal branch is loaded".into());
        }
        let out = self.run(ids, lengths, None, Wanted::Signals)?;
        Ok(WithSignals {
            vectors: out.vectors,
            signals: out.signals,
        })
    }

    /// The hidden state after the first `layers` layers: one row of `hidden` values per
    /// token, texts end to end. What fine-tuning the layers above starts from.
    pub fn hidden_after(
        &self,
        ids: &[u32],
        lengths: &[usize],
        layers: usize,
    ) -> Result<Vec<f32>, String> {
        if layers > self.layers.len() {
            return Err(format!(
                "the encoder has {} layers, not {layers}",
                self.layers.len()
            ));
        }
        Ok(self
            .run(ids, lengths, None, Wanted::HiddenAfter(layers))?
            .hidden)
    }

    /// `forward`, recording the largest magnitude each dense layer's input channels take,
    /// the signal branch's too when one is loaded.
    pub fn forward_observed(
        &self,
        ids: &[u32],
        lengths: &[usize],
        maxima: &mut InputMaxima,
    ) -> Result<Vec<Vec<f32>>, String> {
        let wanted = if self.branch.is_some() {
            Wanted::Signals
        } else {
            Wanted::Vectors
        };
        Ok(self.run(ids, lengths, Some(maxima), wanted)?.vectors)
    }

    fn run(
        &self,
        ids: &[u32],
        lengths: &[usize],
        mut maxima: Option<&mut InputMaxima>,
        wanted: Wanted,
    ) -> Result<RunOutput, String> {
        let tokens = ids.len();
        if lengths.iter().sum::<usize>() != tokens {
            return Err("lengths do not add up to the token count".into());
        }
        if let Some(&len) = lengths.iter().find(|&&l| l > self.max_positions || l == 0) {
            return Err(format!(
                "a text of {len} tokens (the model takes 1..={})",
                self.max_positions
            ));
        }
        let vocab = self.word.rows();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(format!(
                "token id {id} is outside the vocabulary of {vocab}"
            ));
        }

        let mut hidden = self.embed(ids, lengths);
        let branch = self.branch.as_ref().filter(|_| wanted == Wanted::Signals);
        let shared = match (wanted, branch) {
            (Wanted::HiddenAfter(layers), _) => layers,
            (_, Some(branch)) => branch.from,
            _ => self.layers.len(),
        };
        let widest = self
            .layers
            .iter()
            .chain(branch.iter().flat_map(|b| &b.layers))
            .map(|l| l.intermediate.out_dim.max(l.qkv.out_dim))
            .max()
            .unwrap_or(0);
        let mut scratch = Scratch {
            wide: vec![0.0f32; tokens * widest],
            context: vec![0.0f32; tokens * self.hidden],
            projected: vec![0.0f32; tokens * self.hidden],
        };
        for (index, layer) in self.layers[..shared].iter().enumerate() {
            self.layer_forward(
                layer,
                index,
                &mut hidden,
                lengths,
                &mut scratch,
                &mut maxima,
            );
        }
        if let Wanted::HiddenAfter(_) = wanted {
            return Ok(RunOutput {
                hidden,
                ..Default::default()
            });
        }
        let mut branch_hidden = branch.map(|_| hidden.clone());
        for (index, layer) in self.layers.iter().enumerate().skip(shared) {
            self.layer_forward(
                layer,
                index,
                &mut hidden,
                lengths,
                &mut scratch,
                &mut maxima,
            );
        }
        let mut signals = Vec::new();
        if let (Some(branch), Some(branch_hidden)) = (branch, branch_hidden.as_mut()) {
            for (j, layer) in branch.layers.iter().enumerate() {
                let index = self.layers.len() + j;
                self.layer_forward(
                    layer,
                    index,
                    branch_hidden,
                    lengths,
                    &mut scratch,
                    &mut maxima,
                );
            }
            signals = self.sum_pool(branch_hidden, lengths);
            for (signal, &len) in signals.iter_mut().zip(lengths) {
                signal.iter_mut().for_each(|v| *v /= len as f32);
            }
        }
        let mut vectors = self.sum_pool(&hidden, lengths);
        for vector in &mut vectors {
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            vector.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(RunOutput {
            vectors,
            signals,
            hidden: Vec::new(),
        })
    }

    /// One layer over every token row of `hidden`, in place. `index` keys the calibration
    /// record (the encoder's layers, then the branch's).
    fn layer_forward(
        &self,
        layer: &Layer,
        index: usize,
        hidden: &mut [f32],
        lengths: &[usize],
        scratch: &mut Scratch,
        maxima: &mut Option<&mut InputMaxima>,
    ) {
        let h = self.hidden;
        let tokens = hidden.len() / h;
        let mut observe = |input: DenseInput, x: &[f32]| {
            if let Some(maxima) = maxima.as_deref_mut() {
                maxima.record(index, input, x, x.len() / tokens);
            }
        };
        let Scratch {
            wide,
            context,
            projected,
        } = scratch;
        let qkv = &mut wide[..tokens * layer.qkv.out_dim];
        observe(DenseInput::Qkv, hidden);
        layer.qkv.forward(hidden, tokens, qkv);
        kernels::attention(self.isa, qkv, lengths, self.heads, h, context);

        observe(DenseInput::AttentionOut, context);
        layer.attention_out.forward(context, tokens, projected);
        let (gamma, beta) = &layer.attention_norm;
        kernels::add_residual_layer_norm(self.isa, hidden, projected, gamma, beta, self.eps);

        let inter = &mut wide[..tokens * layer.intermediate.out_dim];
        observe(DenseInput::Intermediate, hidden);
        layer.intermediate.forward(hidden, tokens, inter);
        kernels::gelu(self.isa, inter);
        observe(DenseInput::Output, inter);
        layer.output.forward(inter, tokens, projected);
        let (gamma, beta) = &layer.output_norm;
        kernels::add_residual_layer_norm(self.isa, hidden, projected, gamma, beta, self.eps);
    }

    /// Word + position + token-type embeddings, layer-normalised, one row per token.
    fn embed(&self, ids: &[u32], lengths: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let positions: Vec<usize> = lengths.iter().flat_map(|&len| 0..len).collect();
        let mut out = vec![0.0f32; ids.len() * h];
        let (gamma, beta) = &self.embedding_norm;
        out.par_chunks_mut(h)
            .zip(ids.par_iter().zip(positions.par_iter()))
            .for_each(|(row, (&id, &pos))| {
                self.word.row_into(id as usize, row);
                let position = &self.positions[pos * h..(pos + 1) * h];
                for ((v, p), t) in row.iter_mut().zip(position).zip(&self.token_type) {
                    *v += p + t;
                }
                kernels::layer_norm_row(self.isa, row, gamma, beta, self.eps);
            });
        out
    }

    /// The sum over each text's rows (a mean once divided by the length; the L2-normalised
    /// vector needs no division).
    fn sum_pool(&self, hidden: &[f32], lengths: &[usize]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let mut start = 0;
        lengths
            .iter()
            .map(|&len| {
                let rows = &hidden[start * h..(start + len) * h];
                start += len;
                let mut mean = vec![0.0f32; h];
                for row in rows.chunks_exact(h) {
                    for (m, v) in mean.iter_mut().zip(row) {
                        *m += v;
                    }
                }
                mean
            })
            .collect()
    }
}

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
        fn get<'w>(w: &'w Weights, name: &str) -> Result<&'w StoredTensor, String> {
            w.get(name).map_err(|e| e.to_string())
        }
        let vector = |w: &Weights, name: &str| get(w, name).map(|t| t.to_f32());
        let norm = |w: &Weights, prefix: &str| -> Result<(Vec<f32>, Vec<f32>), String> {
            Ok((
                vector(w, &format!("{prefix}.weight"))?,
                vector(w, &format!("{prefix}.bias"))?,
            ))
        };
        let dense =
            |w: &Weights, names: &[&str], input_max: Option<&[f32]>| -> Result<Dense, String> {
                let weights = names
                    .iter()
                    .map(|n| get(w, &format!("{n}.weight")))
                    .collect::<Result<Vec<_>, _>>()?;
                let biases = names
                    .iter()
                    .map(|n| get(w, &format!("{n}.bias")))
                    .collect::<Result<Vec<_>, _>>()?;
                Dense::new(&weights, &biases, matmul, input_max, isa)
                    .map_err(|e| format!("{}: {e}", names[0]))
            };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let input_max = |input: DenseInput| calibration.and_then(|c| c.get(l, input));
            layers.push(Layer {
                qkv: dense(
                    &weights,
                    &[
                        &format!("{p}.attention.self.query"),
                        &format!("{p}.attention.self.key"),
                        &format!("{p}.attention.self.value"),
                    ],
                    input_max(DenseInput::Qkv),
                )?,
                attention_out: dense(
                    &weights,
                    &[&format!("{p}.attention.output.dense")],
                    input_max(DenseInput::AttentionOut),
                )?,
                attention_norm: norm(&weights, &format!("{p}.attention.output.LayerNorm"))?,
                intermediate: dense(
                    &weights,
                    &[&format!("{p}.intermediate.dense")],
                    input_max(DenseInput::Intermediate),
                )?,
                output: dense(
                    &weights,
                    &[&format!("{p}.output.dense")],
                    input_max(DenseInput::Output),
                )?,
                output_norm: norm(&weights, &format!("{p}.output.LayerNorm"))?,
            });
        }
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
            matmul,
            isa,
        })
    }

    /// Embeds texts given as token ids laid end to end (`lengths` per text); returns one
    /// L2-normalised mean-pooled vector per text. Runs on the current rayon pool.
    pub fn forward(&self, ids: &[u32], lengths: &[usize]) -> Result<Vec<Vec<f32>>, String> {
        self.run(ids, lengths, None)
    }

    /// `forward`, recording the largest magnitude each dense layer's input channels take.
    pub fn forward_observed(
        &self,
        ids: &[u32],
        lengths: &[usize],
        maxima: &mut InputMaxima,
    ) -> Result<Vec<Vec<f32>>, String> {
        self.run(ids, lengths, Some(maxima))
    }

    fn run(
        &self,
        ids: &[u32],
        lengths: &[usize],
        mut maxima: Option<&mut InputMaxima>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let h = self.hidden;
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
        let widest = self
            .layers
            .iter()
            .map(|l| l.intermediate.out_dim.max(l.qkv.out_dim))
            .max()
            .unwrap_or(0);
        let mut wide = vec![0.0f32; tokens * widest];
        let mut context = vec![0.0f32; tokens * h];
        let mut projected = vec![0.0f32; tokens * h];
        for (index, layer) in self.layers.iter().enumerate() {
            let mut observe = |input: DenseInput, x: &[f32]| {
                if let Some(maxima) = maxima.as_deref_mut() {
                    maxima.record(index, input, x, x.len() / tokens);
                }
            };
            let qkv = &mut wide[..tokens * layer.qkv.out_dim];
            observe(DenseInput::Qkv, &hidden);
            layer.qkv.forward(&hidden, tokens, qkv);
            kernels::attention(self.isa, qkv, lengths, self.heads, h, &mut context);

            observe(DenseInput::AttentionOut, &context);
            layer
                .attention_out
                .forward(&context, tokens, &mut projected);
            let (gamma, beta) = &layer.attention_norm;
            kernels::add_residual_layer_norm(
                self.isa,
                &mut hidden,
                &projected,
                gamma,
                beta,
                self.eps,
            );

            let inter = &mut wide[..tokens * layer.intermediate.out_dim];
            observe(DenseInput::Intermediate, &hidden);
            layer.intermediate.forward(&hidden, tokens, inter);
            kernels::gelu(self.isa, inter);
            observe(DenseInput::Output, inter);
            layer.output.forward(inter, tokens, &mut projected);
            let (gamma, beta) = &layer.output_norm;
            kernels::add_residual_layer_norm(
                self.isa,
                &mut hidden,
                &projected,
                gamma,
                beta,
                self.eps,
            );
        }
        Ok(self.pool(&hidden, lengths))
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

    /// Mean over each text's rows, then L2 normalisation.
    fn pool(&self, hidden: &[f32], lengths: &[usize]) -> Vec<Vec<f32>> {
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
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|v| *v /= norm);
                mean
            })
            .collect()
    }
}

//! One BERT layer in candle's autograd, for fine-tuning: the same post-LN layer as
//! `packed.rs` (fused query/key/value, exact GELU), over padded batches with an additive
//! attention mask. Only training runs it; inference runs the tuned weights through the
//! packed kernels.
//!
//! Layer norm and softmax are written from differentiable primitives: candle-nn's fused
//! versions have no backward pass.

use candle_core::{D, DType, Device, Tensor, Var};

use crate::weights::Weights;

/// The trainable tensors of a layer, named as in Hugging Face's BERT (the query, key and
/// value projections stacked into `qkv`).
pub struct TrainableLayer {
    pub qkv_weight: Var,
    pub qkv_bias: Var,
    pub attention_out_weight: Var,
    pub attention_out_bias: Var,
    pub attention_norm_weight: Var,
    pub attention_norm_bias: Var,
    pub intermediate_weight: Var,
    pub intermediate_bias: Var,
    pub output_weight: Var,
    pub output_bias: Var,
    pub output_norm_weight: Var,
    pub output_norm_bias: Var,
    heads: usize,
    eps: f64,
}

/// The names a tuned layer's tensors are saved under, in [`TrainableLayer::vars`] order.
pub const TENSOR_NAMES: [&str; 12] = [
    "qkv.weight",
    "qkv.bias",
    "attention_out.weight",
    "attention_out.bias",
    "attention_norm.weight",
    "attention_norm.bias",
    "intermediate.weight",
    "intermediate.bias",
    "output.weight",
    "output.bias",
    "output_norm.weight",
    "output_norm.bias",
];

/// Per dense weight, the Hugging Face tensors it is made of (stacked along `out`).
pub fn source_names(layer: usize, tensor: &str) -> Vec<String> {
    let p = format!("encoder.layer.{layer}");
    let (parts, suffix): (Vec<&str>, &str) = match tensor.rsplit_once('.') {
        Some((part, suffix)) => (
            match part {
                "qkv" => vec![
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                ],
                "attention_out" => vec!["attention.output.dense"],
                "attention_norm" => vec!["attention.output.LayerNorm"],
                "intermediate" => vec!["intermediate.dense"],
                "output" => vec!["output.dense"],
                "output_norm" => vec!["output.LayerNorm"],
                other => vec![other],
            },
            suffix,
        ),
        None => (vec![tensor], ""),
    };
    parts
        .into_iter()
        .map(|part| format!("{p}.{part}.{suffix}"))
        .collect()
}

impl TrainableLayer {
    /// Layer `layer` of the encoder, expanded to f32 as the starting point.
    pub fn from_weights(
        weights: &Weights,
        layer: usize,
        heads: usize,
        eps: f64,
    ) -> candle_core::Result<TrainableLayer> {
        let tensors: Vec<Tensor> = TENSOR_NAMES
            .iter()
            .map(|name| {
                let parts = source_names(layer, name)
                    .iter()
                    .map(|n| {
                        let stored = weights
                            .get(n)
                            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                        Tensor::from_vec(stored.to_f32(), stored.shape.clone(), &Device::Cpu)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 0)
            })
            .collect::<candle_core::Result<_>>()?;
        TrainableLayer::from_tensors(tensors, heads, eps)
    }

    /// From tensors in [`TENSOR_NAMES`] order.
    pub fn from_tensors(
        tensors: Vec<Tensor>,
        heads: usize,
        eps: f64,
    ) -> candle_core::Result<TrainableLayer> {
        let mut vars = tensors
            .into_iter()
            .map(|t| Var::from_tensor(&t.to_dtype(DType::F32)?));
        let mut next = || vars.next().expect("twelve tensors");
        Ok(TrainableLayer {
            qkv_weight: next()?,
            qkv_bias: next()?,
            attention_out_weight: next()?,
            attention_out_bias: next()?,
            attention_norm_weight: next()?,
            attention_norm_bias: next()?,
            intermediate_weight: next()?,
            intermediate_bias: next()?,
            output_weight: next()?,
            output_bias: next()?,
            output_norm_weight: next()?,
            output_norm_bias: next()?,
            heads,
            eps,
        })
    }

    /// Every trainable tensor, in [`TENSOR_NAMES`] order.
    pub fn vars(&self) -> [&Var; 12] {
        [
            &self.qkv_weight,
            &self.qkv_bias,
            &self.attention_out_weight,
            &self.attention_out_bias,
            &self.attention_norm_weight,
            &self.attention_norm_bias,
            &self.intermediate_weight,
            &self.intermediate_bias,
            &self.output_weight,
            &self.output_bias,
            &self.output_norm_weight,
            &self.output_norm_bias,
        ]
    }

    /// `x`: `[batch, width, hidden]`; `mask`: `[batch, 1, 1, width]`, 0 for real tokens and
    /// a large negative number for padding; `dropout`: applied to the attention and FFN
    /// outputs before their residual (training only).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        dropout: &mut dyn FnMut(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (batch, width, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let rows = x.reshape((batch * width, hidden))?;
        let qkv = linear(&rows, &self.qkv_weight, &self.qkv_bias)?
            .reshape((batch, width, 3, self.heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let part = |at: usize| qkv.get(at)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(mask)?;
        let context = softmax_last(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * width, hidden))?;
        let attended = dropout(&linear(
            &context,
            &self.attention_out_weight,
            &self.attention_out_bias,
        )?)?;
        let rows = layer_norm(
            &(rows + attended)?,
            &self.attention_norm_weight,
            &self.attention_norm_bias,
            self.eps,
        )?;
        let inner =
            linear(&rows, &self.intermediate_weight, &self.intermediate_bias)?.gelu_erf()?;
        let out = dropout(&linear(&inner, &self.output_weight, &self.output_bias)?)?;
        layer_norm(
            &(rows + out)?,
            &self.output_norm_weight,
            &self.output_norm_bias,
            self.eps,
        )?
        .reshape((batch, width, hidden))
    }
}

/// `x · Wᵀ + b` for `x` `[rows, in]`, `W` `[out, in]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    x.matmul(&weight.t()?)?.broadcast_add(bias)
}

fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    // The row maximum only keeps exp in range; it carries no gradient worth computing.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(variance + eps)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

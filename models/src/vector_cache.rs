//! Embeddings cached on disk, keyed by encoder and text, so training and evaluation embed
//! each labelled text once (e5-small needs minutes for the 48,000 sentiment texts on two
//! cores; a cached run reads them in a second).
//!
//! One append-only file per encoder mode (`<dir>/<model>-<matmul>.vectors`): records of a
//! 16-byte SHA-256 prefix of the text, then `dims` little-endian f32s. A torn last record
//! (a crash mid-append) is dropped on open.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Encoder, ModelError};

const KEY_BYTES: usize = 16;

pub struct VectorCache {
    path: PathBuf,
    dims: usize,
    vectors: HashMap<[u8; KEY_BYTES], Vec<f32>>,
}

fn key(text: &str) -> [u8; KEY_BYTES] {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(&digest[..KEY_BYTES]);
    key
}

impl VectorCache {
    /// Opens (or starts) the cache of `encoder`'s vectors under `dir`.
    pub fn open(dir: &Path, encoder: &Encoder) -> std::io::Result<VectorCache> {
        std::fs::create_dir_all(dir)?;
        let spec = encoder.spec();
        let path = dir.join(format!("{}-{}.vectors", spec.name, encoder.matmul().name()));
        let dims = spec.dims;
        let record = KEY_BYTES + dims * 4;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let whole = bytes.len() / record * record;
        if whole != bytes.len() {
            tracing::warn!(path = %path.display(), "dropping a torn record at the end of the vector cache");
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(whole as u64)?;
        }
        let vectors = bytes[..whole]
            .chunks_exact(record)
            .map(|r| {
                let mut k = [0u8; KEY_BYTES];
                k.copy_from_slice(&r[..KEY_BYTES]);
                let v = r[KEY_BYTES..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (k, v)
            })
            .collect();
        Ok(VectorCache {
            path,
            dims,
            vectors,
        })
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Vectors for `texts`, embedding (and appending) only those not cached yet.
    pub fn embed(
        &mut self,
        encoder: &Encoder,
        texts: &[&str],
        max_batch_tokens: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !self.vectors.contains_key(&key(t)))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        // In slices, so a long first run keeps what it has done if interrupted.
        for chunk in missing.chunks(2048) {
            let embedded = encoder.embed(chunk, max_batch_tokens)?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| ModelError::Inference(format!("{}: {e}", self.path.display())))?;
            let mut out = Vec::with_capacity(chunk.len() * (KEY_BYTES + self.dims * 4));
            for (text, vector) in chunk.iter().zip(embedded.vectors) {
                let k = key(text);
                out.extend_from_slice(&k);
                for v in &vector {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                self.vectors.insert(k, vector);
            }
            file.write_all(&out)
                .map_err(|e| ModelError::Inference(format!("{}: {e}", self.path.display())))?;
            tracing::info!(embedded = self.vectors.len(), "vector cache");
        }
        Ok(texts
            .iter()
            .map(|t| self.vectors[&key(t)].clone())
            .collect())
    }
}

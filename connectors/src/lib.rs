//! Rapport's connectors: the [`Interaction`] record and the [`signals`] the models read in
//! it (the records every stage passes on), source formats (one module per channel, one
//! function per format) and format detection.
//!
//! This crate is pure parsing: bytes in, interactions or precise errors out. Reading files,
//! polling servers, checkpoints and publishing live in `rapport-pipeline`'s connector
//! runtime, so every format can be tested without a bus.

pub mod call;
pub mod chat;
pub mod email;
pub mod error;
pub mod format;
pub mod ids;
pub mod json_input;
pub mod record;
pub mod signals;
pub mod social;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod unit;

pub use error::ParseError;
pub use format::{Format, ParseContext, Unit, detect, interactions};
pub use json_input::{email_id, phone_id};
pub use record::{Author, Channel, Interaction, Role};

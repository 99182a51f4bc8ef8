//! Rapport's connectors: source formats (one module per channel, one function per format)
//! and format detection, producing the [`Interaction`] record of `rapport-record` (re-exported
//! here with its [`ids`] and [`signals`], so parsers and callers name one crate).
//!
//! This crate is pure parsing: bytes in, interactions or precise errors out. Reading files,
//! polling servers, checkpoints and publishing live in `rapport-pipeline`'s sources, so
//! every format can be tested without a bus.

pub mod call;
pub mod chat;
pub mod email;
pub mod error;
pub mod format;
pub mod json_input;
pub mod social;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod unit;

pub use error::ParseError;
pub use format::{Format, ParseContext, Unit, detect, interactions};
pub use json_input::{email_id, phone_id};
pub use rapport_record::interaction as record;
pub use rapport_record::{Author, Channel, Interaction, Role, ids, signals};

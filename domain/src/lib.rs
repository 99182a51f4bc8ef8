//! Rapport's domain core: what a conversation means, with no I/O (no runtime, bus, store
//! or HTTP). The analysed interaction and its signals, customer profiles with their
//! relationship dimensions and nearest relationship type, flags with their status, and the
//! phrase cues the rules share. The worker, the store, the queries and the API sit above
//! it; it depends only on the record (`rapport-record`), never on the parsers.

pub mod cues;
pub mod flags;
pub mod identity;
pub mod interaction;
pub mod profile;
pub mod redaction;
pub mod relationships;
pub mod testing;

/// The signals the models read in a message: a record, kept with the interaction's.
pub use rapport_record::signals;

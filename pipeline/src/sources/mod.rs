//! Sources: where interactions come from. Each connector kind is one folder implementing
//! [`Source`] (or, for pushed input, giving routes) and one line in [`SOURCES`]; the formats
//! themselves are parsed by `rapport-connectors`.
//!
//! What is shared lives here, once: the [`SourceContext`] every source carries (name,
//! checkpoints, counters, parse settings, shutdown), the [`Sink`] it hands interactions and
//! dead letters to, the commit that counts what was stored, and [`run`], the loop with the
//! back-off and the shutdown path.

pub mod chat_webhook;
mod context;
mod emit;
pub mod files;
pub mod imap;
mod kind;
pub mod maildir;
pub mod mastodon;
mod registry;
mod run;
mod sink;
pub mod status;

pub use context::{CommitBatch, SourceContext, parse_template};
pub use emit::{emit_unit, ingest_dead_letter, parse_guarded};
pub use kind::{Build, BuiltSource, SourceKind, Test, Tested, Verdict};
pub use registry::{SOURCES, source_kind};
pub use run::{Pass, Retry, Source, SourceError, run};
pub use sink::Sink;
pub use status::{ConnectorStatus, Counters};

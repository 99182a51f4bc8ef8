//! What a connector kind provides: how to build it from its configuration, and how to test
//! it without publishing. Each kind's folder exports one [`SourceKind`].

use futures::future::BoxFuture;
use rapport_config::{Connector, Settings};

use super::context::SourceContext;
use super::run::{Source, SourceError};
use super::sink::Sink;

/// A connector, built and ready to run.
#[expect(
    clippy::large_enum_variant,
    reason = "one per connector start, moved straight into its task: boxing buys nothing"
)]
pub enum BuiltSource {
    /// Rapport reads it: the daemon runs it with [`super::run()`] and this sink.
    Pulled { source: Box<dyn Source>, sink: Sink },
    /// It is pushed to Rapport: routes for the HTTP listener.
    Pushed(axum::Router),
}

/// What `rapport connectors test` found.
pub struct Tested {
    /// For people: one paragraph, or a line per file looked at.
    pub report: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Reachable, and what it holds parses.
    Ready,
    /// Unreachable, unreadable or unparsable.
    Failed,
    /// Something is missing from the configuration.
    Misconfigured,
}

impl Tested {
    pub fn from_result<E: std::fmt::Display>(result: Result<String, E>) -> Self {
        match result {
            Ok(report) => Tested {
                report,
                verdict: Verdict::Ready,
            },
            Err(e) => Tested {
                report: e.to_string(),
                verdict: Verdict::Failed,
            },
        }
    }
}

/// Builds a connector from its validated spec. `sink` is where it hands what it reads.
pub type Build = fn(&Connector, SourceContext, &Settings, Sink) -> Result<BuiltSource, SourceError>;

/// Checks a connector is reachable and parses its first items, without publishing or
/// moving any cursor.
pub type Test = for<'a> fn(&'a Connector, &'a SourceContext, &'a Settings) -> BoxFuture<'a, Tested>;

pub struct SourceKind {
    /// As in configuration: `kind = "imap"`.
    pub kind: &'static str,
    pub build: Build,
    pub test: Test,
}

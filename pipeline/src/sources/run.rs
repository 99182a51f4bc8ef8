//! The [`Source`] trait and the one loop that runs every pulled source: pass, wait, retry
//! with back-off, stop on shutdown. Sources say what they read and how they wait; when to
//! retry and how to stop is decided here, once.

use std::time::Duration;

use futures::future::BoxFuture;
use tracing::{debug, info, warn};

use super::context::SourceContext;
use super::sink::Sink;
use crate::bus::BusError;
use crate::lifecycle::Backoff;

/// Retries after a failed pass: 1 s doubling to 5 min, unless the far end asks otherwise.
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// A connector Rapport reads from (files, a mailbox, a timeline). Pushed sources (the chat
/// webhook) are routes instead; see [`super::BuiltSource`].
pub trait Source: Send {
    fn context(&self) -> &SourceContext;

    /// Reads what is new since the cursor, hands it to `sink` and commits. Once shutdown is
    /// requested it returns at its next commit with [`Pass::complete`] false.
    fn pass<'a>(&'a mut self, sink: &'a mut Sink) -> BoxFuture<'a, Result<Pass, SourceError>>;

    /// Waits until the next pass is worth making (the poll interval, or IMAP IDLE); returns
    /// early on shutdown.
    fn wait(&mut self) -> BoxFuture<'_, Result<(), SourceError>>;

    /// Ends what the source holds open (an IMAP session); called once, on the way out.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Interactions handed to the sink.
    pub handed: u64,
    /// False when it stopped early for shutdown.
    pub complete: bool,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A transient failure (network, bus, server): back off and try again.
    Backoff,
    /// The far end said how long to wait (a rate limit).
    After(Duration),
    /// Only a configuration change can fix it: the source stops.
    Never,
}

/// A failed pass or wait, with whether a retry can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
    pub retry: Retry,
}

impl SourceError {
    pub fn transient(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        SourceError {
            message: message.into(),
            retry: Retry::Never,
        }
    }
}

impl From<BusError> for SourceError {
    fn from(error: BusError) -> Self {
        SourceError::transient(error.to_string())
    }
}

/// Runs `source` until shutdown: a pass, a wait, again. Failures are recorded in the
/// connector's counters and retried; returns an error only for one no retry can fix.
pub async fn run(source: &mut dyn Source, sink: &mut Sink) -> Result<(), SourceError> {
    let cx = source.context().clone();
    let mut shutdown = cx.shutdown.clone();
    let mut backoff = RETRY;
    info!(connector = %cx.name, "source started");
    let outcome = loop {
        if shutdown.requested() {
            break Ok(());
        }
        let failure = match source.pass(sink).await {
            Ok(pass) if !pass.complete => break Ok(()),
            Ok(pass) => {
                backoff.reset();
                debug!(connector = %cx.name, handed = pass.handed, "pass done");
                match source.wait().await {
                    Ok(()) => continue,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        cx.counters.record_error(failure.message.clone());
        let delay = match failure.retry {
            Retry::Never => break Err(failure),
            Retry::After(asked) => asked,
            Retry::Backoff => backoff.next_delay(),
        };
        warn!(connector = %cx.name, error = %failure, retry_in = ?delay, "source failed; retrying");
        if shutdown.sleep(delay).await {
            break Ok(());
        }
    };
    source.close().await;
    info!(connector = %cx.name, "source stopped");
    outcome
}

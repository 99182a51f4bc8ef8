//! What every source carries: its name, checkpoints, counters, parse settings and the stop
//! signal, built once per connector (by the daemon, `rapport ingest`, the demo or a test).

use std::sync::Arc;

use bytes::Bytes;
use rapport_connectors::ParseContext;
use time::OffsetDateTime;

use super::emit::ingest_dead_letter;
use super::sink::Sink;
use super::status::Counters;
use crate::bus::{BusError, Published};
use crate::checkpoint::Checkpoints;
use crate::lifecycle::Shutdown;

/// The context of one running connector. Cheap to clone: clones share the counters.
#[derive(Clone)]
pub struct SourceContext {
    pub name: String,
    /// Where cursors are kept; `None` in dry-run, where a source reads everything.
    pub checkpoints: Option<Checkpoints>,
    pub counters: Arc<Counters>,
    /// The connector-wide parse settings; [`SourceContext::parse_context`] adds the source.
    pub template: ParseContext,
    pub shutdown: Shutdown,
}

impl SourceContext {
    /// A context with fresh counters that never asks to stop.
    pub fn new(template: ParseContext, checkpoints: Option<Checkpoints>) -> Self {
        SourceContext {
            name: template.connector.clone(),
            checkpoints,
            counters: Arc::new(Counters::default()),
            template,
            shutdown: Shutdown::never(),
        }
    }

    pub fn with_counters(mut self, counters: Arc<Counters>) -> Self {
        self.counters = counters;
        self
    }

    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The parse settings for one input: `source` names it in records and dead letters,
    /// `source_time` stands in for messages that carry no time of their own.
    pub fn parse_context(&self, source: &str, source_time: OffsetDateTime) -> ParseContext {
        let mut ctx = self.template.clone();
        ctx.source = source.to_string();
        ctx.source_time = source_time;
        ctx
    }

    /// Waits until the sink stored everything handed over and counts it; only then may a
    /// source move its cursor.
    pub async fn commit(&self, sink: &mut Sink) -> Result<Published, BusError> {
        let published = sink.commit().await?;
        let counters = &self.counters;
        counters.add(&counters.published, published.stored);
        counters.add(&counters.duplicates, published.duplicates);
        Ok(published)
    }

    /// An input that yields no units at all (unreadable, unrecognised, too large, empty
    /// answer): counted, recorded and dead-lettered whole.
    pub async fn reject(
        &self,
        sink: &mut Sink,
        source: &str,
        offset: Option<u64>,
        reason: String,
        raw: Bytes,
    ) -> Result<(), BusError> {
        let counters = &self.counters;
        counters.add(&counters.read, 1);
        counters.add(&counters.failed, 1);
        counters.record_error(format!("{source}: {reason}"));
        let letter = ingest_dead_letter(&self.name, source, offset, reason, raw);
        sink.dead_letter(&letter).await
    }
}

/// The parse settings of connector `name`: its own when it is configured (company domains,
/// speaker roles), else the ingest defaults. The one place a [`ParseContext`] is set up
/// from configuration.
pub fn parse_template(
    connector: Option<&rapport_config::Connector>,
    name: &str,
    ingest: &rapport_config::settings::IngestSettings,
) -> ParseContext {
    let mut ctx = ParseContext::new(name.to_string(), String::new());
    match connector {
        Some(connector) => {
            ctx.company_domains = connector.company_domains.clone();
            ctx.speaker_roles = connector.speaker_roles.clone();
        }
        None => ctx.company_domains = ingest.company_domains.clone(),
    }
    ctx.max_message_bytes = ingest.max_message_bytes;
    ctx.max_file_bytes = ingest.max_file_bytes;
    ctx
}

/// Counts interactions handed over since the last commit, for sources that commit every
/// so many (files, IMAP): one policy, each source its own batch size.
pub struct CommitBatch {
    every: usize,
    since_commit: usize,
}

impl CommitBatch {
    pub fn every(every: usize) -> Self {
        CommitBatch {
            every: every.max(1),
            since_commit: 0,
        }
    }

    /// Adds `handed`; true once a commit is due (and the count starts over).
    pub fn handed(&mut self, handed: usize) -> bool {
        self.since_commit += handed;
        if self.since_commit >= self.every {
            self.since_commit = 0;
            return true;
        }
        false
    }
}

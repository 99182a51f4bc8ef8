//! The analysis worker: interactions off the durable `analysis` consumer → redaction,
//! identity, embedding and signals → the store → ack.
//!
//! Three stages joined by channels of one batch each, so the encoder works on one batch
//! while the next is pulled and the previous one is written, and a slow store stops the
//! pull instead of filling memory:
//!
//! ```text
//! consume (pull batch_messages or batch_wait_ms; decode)
//!   ─▶ analyse (resolve, redact, classify)
//!   ─▶ write (interactions; then follow_up: the touched customers' profiles and
//!             conversations' flags, recomputed from what is stored; new flags published)
//!   ─▶ consume (ack; or nak / dead-letter with a BatchError that says whether a retry helps)
//! ```
//!
//! One module a stage: `consume.rs` (JetStream: pull, ack, nak, DLQ), `analyse.rs`,
//! `write.rs`, `follow_up.rs` (reads once, then calls the domain's profile and flag rules).
//!
//! At-least-once: a message is acked only after its point is durably stored (the store's
//! upsert returns after a flush), and the point id is derived from `Interaction.id`, so
//! a redelivery after a crash overwrites instead of duplicating. Any number of worker
//! processes may share the consumer. A message that cannot be decoded is dead-lettered at
//! once (redelivering it cannot help); one whose analysis or storage fails is negatively
//! acknowledged for a later retry, and dead-lettered on its last delivery (`max_deliver`),
//! always with the reason.

mod analyse;
mod consume;
mod error;
mod follow_up;
mod write;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_nats::jetstream;
use rapport_config::Settings;
use rapport_config::relationships::RelationshipCatalogue;
use rapport_models::classify::Classifier;
use tokio::sync::{mpsc, watch};
use tracing::info;

pub use error::BatchError;
pub use follow_up::rebuild_profiles;

use crate::bus::{BusError, BusHandle, analysis_pull_consumer};
use crate::flags::FlagRules;
use crate::histogram::{self, Histogram};
use crate::identities::Identities;
use crate::lifecycle::Shutdown;
use crate::profile::ProfileRules;
use crate::redaction::Redactor;
use crate::store::{InteractionPoint, Store};

/// The dead-letter stage of this worker: `rapport.dlq.analysis`.
pub const STAGE: &str = "analysis";
/// Identity look-ups in flight per batch (KV round trips).
const RESOLVE_CONCURRENCY: usize = 32;
/// Back-off before a failed message is redelivered.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// What a worker needs besides the bus and the store: the models, the privacy rules, the
/// relationship catalogue and the profile and flag rules.
pub struct Analyzer {
    pub classifier: Classifier,
    /// `None` when `privacy.redact` is off.
    pub redactor: Option<Redactor>,
    pub catalogue: RelationshipCatalogue,
    pub profile_rules: ProfileRules,
    pub flag_rules: FlagRules,
}

/// Counters and histograms since start, for `/metrics`, status and tests.
#[derive(Debug)]
pub struct WorkerCounters {
    pub stored: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retried: AtomicU64,
    pub batches: AtomicU64,
    pub flags_raised: AtomicU64,
    /// Tokens the encoder ran per batch.
    pub batch_tokens: Histogram,
    /// Seconds per batch in the models.
    pub analyse_seconds: Histogram,
    /// Seconds per batch storing it: upsert, profiles, flags.
    pub store_seconds: Histogram,
    /// Seconds from JetStream's receipt of an interaction to its ack after storing.
    pub ingest_to_stored_seconds: Histogram,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            stored: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            flags_raised: AtomicU64::new(0),
            batch_tokens: Histogram::new(histogram::TOKENS),
            analyse_seconds: Histogram::new(histogram::SECONDS),
            store_seconds: Histogram::new(histogram::SECONDS),
            ingest_to_stored_seconds: Histogram::new(histogram::SECONDS),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    messages: usize,
    wait: Duration,
    max_deliver: i64,
    dlq_max_raw_bytes: usize,
}

/// A batch after analysis: points to store, with the messages to ack once they are.
struct Analysed {
    points: Vec<InteractionPoint>,
    messages: Vec<jetstream::Message>,
}

/// Runs until `stop` turns true (then finishes the batches in flight) or the bus fails.
pub async fn run<S: Store>(
    bus: &BusHandle,
    store: S,
    analyzer: Arc<Analyzer>,
    settings: &Settings,
    counters: Arc<WorkerCounters>,
    stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let limits = BatchLimits {
        messages: settings.analysis.batch_messages,
        wait: Duration::from_millis(settings.analysis.batch_wait_ms),
        max_deliver: settings.nats.max_deliver,
        dlq_max_raw_bytes: settings.ingest.dlq_max_raw_bytes,
    };
    let consumer = analysis_pull_consumer(&bus.jetstream).await?;
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (stored_tx, stored_rx) = mpsc::channel(1);
    let identities = Identities::new(bus.identities.clone());
    info!(batch_messages = limits.messages, "analysis worker started");
    let analyzer_for_write = analyzer.clone();
    let pull = consume::pull(consumer, limits, batch_tx, Shutdown::new(stop));
    let analyse = analyse::analyse(
        batch_rx,
        stored_tx,
        analyzer,
        identities,
        bus.publisher(),
        limits,
        counters.clone(),
    );
    let write = write::write(
        stored_rx,
        store,
        analyzer_for_write,
        bus.publisher(),
        limits,
        counters,
    );
    let (pulled, _, _) = tokio::join!(pull, analyse, write);
    info!("analysis worker stopped");
    pulled
}

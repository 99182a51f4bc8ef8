//! The analysis worker: interactions off the durable `analysis` consumer → redaction,
//! identity, embedding and signals → the store → ack.
//!
//! Three stages joined by channels of one batch each, so the encoder works on one batch
//! while the next is pulled and the previous one is written, and a slow store stops the
//! pull instead of filling memory:
//!
//! ```text
//! pull (batch_messages or batch_wait_ms) ─▶ analyse (decode, resolve, redact, classify)
//!   ─▶ store (interactions; then the touched customers' profiles and conversations'
//!             flags, recomputed from what is stored; new flags published; then ack)
//! ```
//!
//! At-least-once: a message is acked only after its point is durably stored (the store's
//! upsert returns after a flush), and the point id is derived from `Interaction.id`, so
//! a redelivery after a crash overwrites instead of duplicating. Any number of worker
//! processes may share the consumer. A message that cannot be decoded is dead-lettered at
//! once (redelivering it cannot help); one whose analysis or storage fails is negatively
//! acknowledged for a later retry, and dead-lettered on its last delivery (`max_deliver`),
//! always with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use rapport_config::Settings;
use rapport_connectors::{Interaction, Role};
use rapport_models::classify::{Classifier, Speaker};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::bus::{
    BusError, BusHandle, INTERACTIONS_STREAM, Publisher, analysis_pull_consumer, topology,
};
use crate::dlq::DeadLetter;
use crate::flags::{self, Flag, FlagRules};
use crate::histogram::{self, Histogram};
use crate::identities::Identities;
use crate::profile::{self, ProfileInput, ProfileRules};
use crate::redact::Redactor;
use crate::store::{
    AnalysedInteraction, CustomerPoint, InteractionFilter, InteractionPoint, Store,
};
use rapport_config::relationships::RelationshipCatalogue;

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
    let pull = pull(consumer, limits, batch_tx, stop);
    let analyse = analyse(
        batch_rx,
        stored_tx,
        analyzer,
        identities,
        bus.publisher(),
        limits,
        counters.clone(),
    );
    let write = write(
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

/// Pulls messages and cuts them into batches.
async fn pull(
    consumer: PullConsumer,
    limits: BatchLimits,
    batches: mpsc::Sender<Vec<jetstream::Message>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(limits.messages)
        .messages()
        .await
        .map_err(|e| topology("consumer analysis", e))?;
    let mut batch = Vec::with_capacity(limits.messages);
    // When the batch in hand must go, full or not: `limits.wait` after its first message.
    let mut deadline = tokio::time::Instant::now();
    loop {
        let next = if batch.is_empty() {
            // Wait for the first message of a batch as long as it takes.
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                next = messages.next() => {
                    deadline = tokio::time::Instant::now() + limits.wait;
                    next
                }
            }
        } else {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(next) => next,
                Err(_) => {
                    if batches.send(std::mem::take(&mut batch)).await.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        match next {
            Some(Ok(message)) => {
                batch.push(message);
                if batch.len() >= limits.messages
                    && batches.send(std::mem::take(&mut batch)).await.is_err()
                {
                    break;
                }
            }
            // Heartbeats missed while the server restarts, and the like: the stream
            // carries on once the connection is back.
            Some(Err(e)) => warn!(error = %e, "pulling from the analysis consumer"),
            None => break,
        }
    }
    if !batch.is_empty() {
        let _ = batches.send(batch).await;
    }
    Ok(())
}

/// Decodes, redacts, resolves and classifies each batch.
async fn analyse(
    mut batches: mpsc::Receiver<Vec<jetstream::Message>>,
    analysed: mpsc::Sender<Analysed>,
    analyzer: Arc<Analyzer>,
    identities: Identities,
    mut dead_letters: Publisher,
    limits: BatchLimits,
    counters: Arc<WorkerCounters>,
) {
    while let Some(messages) = batches.recv().await {
        counters.batches.fetch_add(1, Ordering::Relaxed);
        let mut kept = Vec::with_capacity(messages.len());
        let mut interactions = Vec::with_capacity(messages.len());
        for message in messages {
            match decode(&message) {
                Ok(interaction) => {
                    interactions.push(interaction);
                    kept.push(message);
                }
                Err(reason) => {
                    // Redelivering bytes that do not decode cannot help.
                    dead_letter(&mut dead_letters, &message, &reason, limits, &counters).await;
                }
            }
        }
        if interactions.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let tokens_before = analyzer.classifier.tokens_classified();
        let analysed_batch = analyse_batch(&analyzer, &identities, interactions).await;
        counters
            .analyse_seconds
            .observe(started.elapsed().as_secs_f64());
        counters
            .batch_tokens
            .observe((analyzer.classifier.tokens_classified() - tokens_before) as f64);
        debug!(
            interactions = kept.len(),
            analyse_ms = started.elapsed().as_millis() as u64,
            "batch analysed"
        );
        match analysed_batch {
            Ok(points) => {
                let batch = Analysed {
                    points,
                    messages: kept,
                };
                if analysed.send(batch).await.is_err() {
                    return;
                }
            }
            Err(reason) => {
                retry_or_dead_letter(&mut dead_letters, kept, &reason, limits, &counters).await
            }
        }
    }
}

/// The record in a message, checked against the contract the connectors publish.
fn decode(message: &jetstream::Message) -> Result<Interaction, String> {
    let interaction: Interaction = serde_json::from_slice(&message.payload)
        .map_err(|e| format!("not an Interaction record: {e}"))?;
    interaction.check()?;
    Ok(interaction)
}

async fn analyse_batch(
    analyzer: &Arc<Analyzer>,
    identities: &Identities,
    mut interactions: Vec<Interaction>,
) -> Result<Vec<InteractionPoint>, String> {
    // Customers first, then agents and bots: a reply takes the customer of its
    // conversation, which a customer message of the same batch may only now establish.
    let mut customers: Vec<Option<String>> = vec![None; interactions.len()];
    for agents in [false, true] {
        let wanted: Vec<usize> = (0..interactions.len())
            .filter(|&i| matches!(interactions[i].author.role, Role::Agent | Role::Bot) == agents)
            .collect();
        for chunk in wanted.chunks(RESOLVE_CONCURRENCY) {
            let resolved = futures::future::join_all(chunk.iter().map(|&i| {
                identities.resolve(&interactions[i].author, &interactions[i].conversation_id)
            }))
            .await;
            for (&i, customer) in chunk.iter().zip(resolved) {
                customers[i] = customer.map_err(|e| e.to_string())?;
            }
        }
    }
    // After resolution, which needs the identity keys that redaction drops.
    if let Some(redactor) = &analyzer.redactor {
        for interaction in &mut interactions {
            redact_interaction(redactor, interaction);
        }
    }
    let analyzer = analyzer.clone();
    tokio::task::spawn_blocking(move || {
        let texts: Vec<&str> = interactions.iter().map(|i| i.text.as_str()).collect();
        let speakers: Vec<Option<Speaker>> = interactions
            .iter()
            .map(|i| speaker(i.author.role))
            .collect();
        let classified = analyzer
            .classifier
            .classify(&texts, &speakers)
            .map_err(|e| format!("analysis failed: {e}"))?;
        Ok(interactions
            .into_iter()
            .zip(customers)
            .zip(classified)
            .map(
                |((interaction, customer_id), (vector, signals))| InteractionPoint {
                    stored: AnalysedInteraction {
                        interaction,
                        customer_id,
                        signals,
                    },
                    vector,
                },
            )
            .collect())
    })
    .await
    .map_err(|e| format!("analysis panicked: {e}"))?
}

fn speaker(role: Role) -> Option<Speaker> {
    match role {
        Role::Customer => Some(Speaker::Customer),
        Role::Agent | Role::Bot => Some(Speaker::Agent),
        Role::Unknown => None,
    }
}

/// Redacts what is stored: the text, the subject and other text attributes, and the
/// author's identity keys (they live in the identity bucket, linked by `customer_id`).
fn redact_interaction(redactor: &Redactor, interaction: &mut Interaction) {
    if let std::borrow::Cow::Owned(text) = redactor.redact(&interaction.text).text {
        interaction.text = text;
    }
    for value in interaction.attributes.values_mut() {
        if let serde_json::Value::String(s) = value
            && let std::borrow::Cow::Owned(redacted) = redactor.redact(s).text
        {
            *s = redacted;
        }
    }
    if let Some(name) = &interaction.author.name
        && let std::borrow::Cow::Owned(redacted) = redactor.redact(name).text
    {
        interaction.author.name = Some(redacted);
    }
    interaction.author.ids.clear();
}

/// Stores each analysed batch, brings its customers and conversations up to date, then
/// acks it.
async fn write<S: Store>(
    mut batches: mpsc::Receiver<Analysed>,
    store: S,
    analyzer: Arc<Analyzer>,
    mut publisher: Publisher,
    limits: BatchLimits,
    counters: Arc<WorkerCounters>,
) {
    while let Some(Analysed { points, messages }) = batches.recv().await {
        let count = points.len() as u64;
        let customers: BTreeSet<String> = points
            .iter()
            .filter_map(|p| p.stored.customer_id.clone())
            .collect();
        // Only a message that meets a flag rule, or an agent's reply (which may evade an
        // earlier complaint), can give a conversation a new flag.
        let conversations: BTreeSet<String> = points
            .iter()
            .filter(|p| flags::may_raise(&p.stored, &analyzer.flag_rules))
            .map(|p| p.stored.interaction.conversation_id.clone())
            .collect();
        let stored = async {
            let started = std::time::Instant::now();
            store
                .upsert_interactions(points)
                .await
                .map_err(|e| e.to_string())?;
            let upserted = started.elapsed();
            let raised = follow_up(
                &store,
                &analyzer,
                &customers,
                &conversations,
                &mut publisher,
            )
            .await?;
            debug!(
                interactions = count,
                customers = customers.len(),
                upsert_ms = upserted.as_millis() as u64,
                follow_up_ms = (started.elapsed() - upserted).as_millis() as u64,
                "batch stored"
            );
            Ok::<u64, String>(raised)
        };
        let started = std::time::Instant::now();
        let outcome = stored.await;
        counters
            .store_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(raised) => {
                let now = time::OffsetDateTime::now_utc();
                for message in &messages {
                    if let Ok(info) = message.info() {
                        let waited = (now - info.published).as_seconds_f64();
                        counters.ingest_to_stored_seconds.observe(waited.max(0.0));
                    }
                    // A lost ack only means a redelivery, which overwrites the same point.
                    if let Err(e) = message.ack().await {
                        debug!(error = %e, "ack not sent; the message will be redelivered");
                    }
                }
                counters.stored.fetch_add(count, Ordering::Relaxed);
                counters.flags_raised.fetch_add(raised, Ordering::Relaxed);
            }
            Err(reason) => {
                warn!(error = %reason, interactions = messages.len(), "storing a batch failed");
                retry_or_dead_letter(&mut publisher, messages, &reason, limits, &counters).await
            }
        }
    }
}

/// Recomputes the profiles of `customers` and the flags of `conversations` from what is
/// stored (so a redelivery changes nothing), stores the profiles, and publishes and stores
/// the flags not raised before. Returns how many flags were new.
async fn follow_up<S: Store>(
    store: &S,
    analyzer: &Analyzer,
    customers: &BTreeSet<String>,
    conversations: &BTreeSet<String>,
    publisher: &mut Publisher,
) -> Result<u64, String> {
    let failed = |e: crate::store::StoreError| e.to_string();
    let mut raised = rebuild_profiles(
        store,
        customers,
        &analyzer.catalogue,
        &analyzer.profile_rules,
        &analyzer.flag_rules,
    )
    .await?;

    let mut by_conversation: BTreeMap<String, Vec<(AnalysedInteraction, Vec<f32>)>> =
        BTreeMap::new();
    if !conversations.is_empty() {
        let those = InteractionFilter {
            any_conversation: conversations.iter().cloned().collect(),
            ..Default::default()
        };
        for (stored, vector) in store
            .list_interactions_with_vectors(&those, usize::MAX)
            .await
            .map_err(failed)?
        {
            by_conversation
                .entry(stored.interaction.conversation_id.clone())
                .or_default()
                .push((stored, vector));
        }
    }
    for items in by_conversation.values() {
        for flag in flags::conversation_flags(items, &analyzer.flag_rules) {
            let vector = items
                .iter()
                .find(|(s, _)| flag.evidence.first() == Some(&s.interaction.id))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            raised.push((flag, vector));
        }
    }
    if raised.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = raised.iter().map(|(f, _)| f.id.clone()).collect();
    let existing: BTreeSet<String> = store
        .existing_flags(&ids)
        .await
        .map_err(failed)?
        .into_iter()
        .collect();
    raised.retain(|(f, _)| !existing.contains(&f.id));
    if raised.is_empty() {
        return Ok(0);
    }
    // Published before stored: a crash in between re-raises it on redelivery, and
    // JetStream drops the second publish by its message id.
    for (flag, _) in &raised {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", flag.id.as_str());
        let payload = serde_json::to_vec(flag).map_err(|e| e.to_string())?;
        publisher
            .publish_raw(crate::subjects::flag(flag.kind), headers, payload.into())
            .await
            .map_err(|e| e.to_string())?;
    }
    publisher.flush().await.map_err(|e| e.to_string())?;
    for (flag, _) in &raised {
        info!(flag = %flag.id, kind = flag.kind.as_str(), customer = ?flag.customer_id, "flag raised");
    }
    let new = store.insert_new_flags(raised).await.map_err(failed)?;
    Ok(new.len() as u64)
}

/// Recomputes and stores the profiles of `customers` from their stored interactions;
/// returns the superuser flags they now call for (not yet published or stored).
pub async fn rebuild_profiles<S: Store>(
    store: &S,
    customers: &BTreeSet<String>,
    catalogue: &RelationshipCatalogue,
    profile_rules: &ProfileRules,
    flag_rules: &FlagRules,
) -> Result<Vec<(Flag, Vec<f32>)>, String> {
    let failed = |e: crate::store::StoreError| e.to_string();
    let mut superusers: Vec<(Flag, Vec<f32>)> = Vec::new();
    let mut profiles = Vec::with_capacity(customers.len());
    // One query for the batch's customers, then each customer's latest history.
    let mut histories: BTreeMap<String, Vec<(AnalysedInteraction, Vec<f32>)>> = BTreeMap::new();
    let all_of_them = InteractionFilter {
        any_customer: customers.iter().cloned().collect(),
        ..Default::default()
    };
    for (stored, vector) in store
        .list_interactions_with_vectors(&all_of_them, usize::MAX)
        .await
        .map_err(failed)?
    {
        if let Some(customer) = stored.customer_id.clone() {
            histories
                .entry(customer)
                .or_default()
                .push((stored, vector));
        }
    }
    for (customer, mut history) in histories {
        // Oldest first already; keep the latest window.
        let skip = history.len().saturating_sub(profile::PROFILE_WINDOW);
        history.drain(..skip);
        let customer = &customer;
        let answers = answers_to_other_customers(store, &history).await?;
        let inputs: Vec<ProfileInput> = history
            .iter()
            .map(|(stored, vector)| ProfileInput {
                stored,
                vector,
                answers_another_customer: answers.contains(&stored.interaction.id),
            })
            .collect();
        let Some(built) = profile::build(customer, &inputs, catalogue, profile_rules) else {
            continue;
        };
        let answering: Vec<&AnalysedInteraction> = history
            .iter()
            .map(|(s, _)| s)
            .filter(|s| answers.contains(&s.interaction.id))
            .collect();
        if let Some(flag) = flags::superuser_flag(&built.profile, &answering, flag_rules) {
            superusers.push((flag, built.semantic.clone()));
        }
        profiles.push(CustomerPoint {
            profile: built.profile,
            semantic: built.semantic,
            relationship: built.relationship,
        });
    }
    store.upsert_customers(profiles).await.map_err(failed)?;
    Ok(superusers)
}

/// The customer's public replies to another customer's question (a post with a `?`, so
/// thanks and chatter do not count): community help, the superuser signal.
async fn answers_to_other_customers<S: Store>(
    store: &S,
    history: &[(AnalysedInteraction, Vec<f32>)],
) -> Result<BTreeSet<String>, String> {
    let replies: Vec<&AnalysedInteraction> = history
        .iter()
        .map(|(s, _)| s)
        .filter(|s| s.interaction.public && s.interaction.in_reply_to.is_some())
        .collect();
    if replies.is_empty() {
        return Ok(BTreeSet::new());
    }
    let parents: Vec<String> = replies
        .iter()
        .filter_map(|s| s.interaction.in_reply_to.clone())
        .collect();
    let parents = store
        .interactions(&parents)
        .await
        .map_err(|e| e.to_string())?;
    Ok(replies
        .iter()
        .filter(|reply| {
            parents
                .iter()
                .any(|parent| flags::answers_peer_question(reply, parent))
        })
        .map(|s| s.interaction.id.clone())
        .collect())
}

/// Naks each message for a later retry, or dead-letters it on its last delivery.
async fn retry_or_dead_letter(
    dead_letters: &mut Publisher,
    messages: Vec<jetstream::Message>,
    reason: &str,
    limits: BatchLimits,
    counters: &WorkerCounters,
) {
    for message in messages {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        if delivered >= limits.max_deliver {
            let reason = format!("{reason} (delivery {delivered} of {})", limits.max_deliver);
            dead_letter(dead_letters, &message, &reason, limits, counters).await;
        } else {
            counters.retried.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await {
                debug!(error = %e, "nak not sent; the message comes back after ack_wait");
            }
        }
    }
}

/// Publishes the message to `rapport.dlq.analysis` with the reason, then acks the
/// original. If the dead letter cannot be published the original is left unacked, so it
/// is redelivered rather than lost.
async fn dead_letter(
    dead_letters: &mut Publisher,
    message: &jetstream::Message,
    reason: &str,
    limits: BatchLimits,
    counters: &WorkerCounters,
) {
    let info = message.info().ok();
    let subject = message.subject.to_string();
    let letter = DeadLetter {
        stage: STAGE.into(),
        reason: reason.to_string(),
        connector: subject.rsplit('.').next().unwrap_or_default().to_string(),
        source: INTERACTIONS_STREAM.into(),
        offset: info.as_ref().map(|i| i.stream_sequence),
        original_subject: Some(subject.clone()),
        raw: message.payload.clone(),
    };
    warn!(%subject, seq = letter.offset, %reason, "interaction dead-lettered");
    let (dlq_subject, headers, payload) = letter.to_message(limits.dlq_max_raw_bytes);
    let published = async {
        dead_letters
            .publish_raw(dlq_subject, headers, payload)
            .await?;
        dead_letters.flush().await
    };
    match published.await {
        Ok(_) => {
            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = message.ack().await {
                debug!(error = %e, "ack of a dead-lettered message not sent");
            }
        }
        Err(e) => warn!(error = %e, "dead letter not published; the message will be redelivered"),
    }
}

//! The JetStream side of the worker: pulls messages off the `analysis` consumer in
//! batches, decodes them, and settles each one: ack once stored, nak for a retry, or
//! dead-letter with the reason.

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use rapport_connectors::Interaction;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::error::BatchError;
use super::{BatchLimits, RETRY_DELAY, STAGE, WorkerCounters};
use crate::bus::{BusError, INTERACTIONS_STREAM, Publisher, topology};
use crate::dlq::DeadLetter;
use crate::lifecycle::Shutdown;
use std::sync::atomic::Ordering;

/// Pulls messages and cuts them into batches.
pub(super) async fn pull(
    consumer: PullConsumer,
    limits: BatchLimits,
    batches: mpsc::Sender<Vec<jetstream::Message>>,
    mut shutdown: Shutdown,
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
                () = shutdown.wait() => break,
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

/// The record in a message, checked against the contract the connectors publish.
pub(super) fn decode(message: &jetstream::Message) -> Result<Interaction, BatchError> {
    let interaction: Interaction = serde_json::from_slice(&message.payload)
        .map_err(|e| BatchError::Undecodable(format!("not an Interaction record: {e}")))?;
    interaction.check().map_err(BatchError::Undecodable)?;
    Ok(interaction)
}

/// Acks a stored batch, observing how long each message took from JetStream to the store.
pub(super) async fn ack_stored(messages: &[jetstream::Message], counters: &WorkerCounters) {
    let now = time::OffsetDateTime::now_utc();
    for message in messages {
        if let Ok(info) = message.info() {
            let waited = (now - info.published).as_seconds_f64();
            counters.ingest_to_stored_seconds.observe(waited.max(0.0));
        }
        // A lost ack only means a redelivery, which overwrites the same point.
        if let Err(e) = message.ack().await {
            debug!(error = %e, "ack not sent; the message will be redelivered");
        }
    }
}

/// Naks each message for a later retry, or dead-letters it: at once when redelivery cannot
/// help, else on its last delivery.
pub(super) async fn retry_or_dead_letter(
    dead_letters: &mut Publisher,
    messages: Vec<jetstream::Message>,
    error: &BatchError,
    limits: BatchLimits,
    counters: &WorkerCounters,
) {
    let reason = error.to_string();
    for message in messages {
        if !error.redelivery_can_help() {
            dead_letter(dead_letters, &message, &reason, limits, counters).await;
            continue;
        }
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
pub(super) async fn dead_letter(
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

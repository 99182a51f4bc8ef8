//! The models' stage: resolves each interaction's customer, redacts what will be stored,
//! and classifies the batch (embedding and signals) off the async threads.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream;
use rapport_connectors::{Interaction, Role};
use rapport_models::classify::Speaker;
use tokio::sync::mpsc;
use tracing::debug;

use super::consume::{dead_letter, decode, retry_or_dead_letter};
use super::error::BatchError;
use super::{Analysed, Analyzer, BatchLimits, RESOLVE_CONCURRENCY, WorkerCounters};
use crate::bus::Publisher;
use crate::identities::Identities;
use crate::store::{AnalysedInteraction, InteractionPoint};

/// Decodes, redacts, resolves and classifies each batch.
pub(super) async fn analyse(
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
                Err(error) => {
                    // Redelivering bytes that do not decode cannot help.
                    dead_letter(
                        &mut dead_letters,
                        &message,
                        &error.to_string(),
                        limits,
                        &counters,
                    )
                    .await;
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
            Err(error) => {
                retry_or_dead_letter(&mut dead_letters, kept, &error, limits, &counters).await
            }
        }
    }
}

async fn analyse_batch(
    analyzer: &Arc<Analyzer>,
    identities: &Identities,
    mut interactions: Vec<Interaction>,
) -> Result<Vec<InteractionPoint>, BatchError> {
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
                customers[i] = customer?;
            }
        }
    }
    // After resolution, which needs the identity keys that redaction drops.
    if let Some(redactor) = &analyzer.redactor {
        for interaction in &mut interactions {
            redactor.redact_interaction(interaction);
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
            .map_err(|e| BatchError::Analysis(format!("analysis failed: {e}")))?;
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
    .map_err(|e| BatchError::Analysis(format!("analysis panicked: {e}")))?
}

fn speaker(role: Role) -> Option<Speaker> {
    match role {
        Role::Customer => Some(Speaker::Customer),
        Role::Agent | Role::Bot => Some(Speaker::Agent),
        Role::Unknown => None,
    }
}

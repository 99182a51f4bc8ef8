//! The store's stage: upserts each analysed batch, brings what it touched up to date
//! ([`super::follow_up`]), then acks it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::consume::{ack_stored, retry_or_dead_letter};
use super::error::BatchError;
use super::follow_up::follow_up;
use super::{Analysed, Analyzer, BatchLimits, WorkerCounters};
use crate::bus::Publisher;
use crate::flags;
use crate::store::Store;

/// Stores each analysed batch, brings its customers and conversations up to date, then
/// acks it.
pub(super) async fn write<S: Store>(
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
            store.upsert_interactions(points).await?;
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
            Ok::<u64, BatchError>(raised)
        };
        let started = std::time::Instant::now();
        let outcome = stored.await;
        counters
            .store_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(raised) => {
                ack_stored(&messages, &counters).await;
                counters.stored.fetch_add(count, Ordering::Relaxed);
                counters.flags_raised.fetch_add(raised, Ordering::Relaxed);
            }
            Err(error) => {
                warn!(%error, interactions = messages.len(), "storing a batch failed");
                retry_or_dead_letter(&mut publisher, messages, &error, limits, &counters).await
            }
        }
    }
}

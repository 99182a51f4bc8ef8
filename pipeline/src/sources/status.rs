//! Per-connector counters (read, published, failed, last error), shared with
//! `rapport connectors status` through the checkpoints bucket.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::checkpoint::Checkpoints;

#[derive(Debug, Default)]
pub struct Counters {
    /// Units of input read (messages, lines, rows, files).
    pub read: AtomicU64,
    /// Interactions JetStream stored.
    pub published: AtomicU64,
    /// Interactions JetStream dropped as already stored.
    pub duplicates: AtomicU64,
    /// Units sent to the dead-letter queue.
    pub failed: AtomicU64,
    /// The connector's task is alive (false while it waits to be restarted).
    pub running: AtomicBool,
    /// Times the daemon restarted the connector after it stopped by itself.
    pub restarts: AtomicU64,
    last_error: Mutex<Option<(String, OffsetDateTime)>>,
    /// When the newest interaction handed on happened (at its source).
    newest_item: Mutex<Option<OffsetDateTime>>,
}

impl Counters {
    pub fn record_error(&self, message: impl Into<String>) {
        *self.last_error.lock().expect("counters lock") =
            Some((message.into(), OffsetDateTime::now_utc()));
    }

    /// Records an interaction handed on: the newest one's time is the connector's lag.
    pub fn saw_item(&self, occurred_at: OffsetDateTime) {
        let mut newest = self.newest_item.lock().expect("counters lock");
        if newest.is_none_or(|n| occurred_at > n) {
            *newest = Some(occurred_at);
        }
    }

    pub fn snapshot(&self, name: &str, kind: &str) -> ConnectorStatus {
        let last_error = self.last_error.lock().expect("counters lock").clone();
        let newest_item_at = *self.newest_item.lock().expect("counters lock");
        let now = OffsetDateTime::now_utc();
        ConnectorStatus {
            name: name.to_string(),
            kind: kind.to_string(),
            read: self.read.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            last_error: last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_at: last_error.map(|(_, t)| t),
            newest_item_at,
            lag_seconds: newest_item_at.map(|t| (now - t).whole_seconds().max(0)),
            updated_at: now,
        }
    }

    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: String,
    pub read: u64,
    pub published: u64,
    pub duplicates: u64,
    pub failed: u64,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub restarts: u64,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// When the newest interaction this connector handed on was written at its source.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub newest_item_at: Option<OffsetDateTime>,
    /// How far the connector is behind its source: seconds from the newest interaction it
    /// handed on to this status. It grows while the source is quiet too; read it with
    /// `running` and `last_error`.
    #[serde(default)]
    pub lag_seconds: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl ConnectorStatus {
    pub async fn save(&self, checkpoints: &Checkpoints) -> Result<(), crate::bus::BusError> {
        checkpoints
            .put(&Checkpoints::status_key(&self.name), self)
            .await
    }

    pub async fn load(
        checkpoints: &Checkpoints,
        name: &str,
    ) -> Result<Option<ConnectorStatus>, crate::bus::BusError> {
        checkpoints.get(&Checkpoints::status_key(name)).await
    }
}

/// One configured connector with its last saved status: what `rapport connectors status`
/// prints and `GET /api/connectors` serves, from the same place (the checkpoints bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorRow {
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    /// `None` until the connector has run once.
    pub status: Option<ConnectorStatus>,
}

/// The rows for `connectors`, plus `ingest` (the one-off `rapport ingest`) once it has run.
pub async fn connector_rows(
    checkpoints: &Checkpoints,
    connectors: &[rapport_config::Connector],
) -> Result<Vec<ConnectorRow>, crate::bus::BusError> {
    let mut names: Vec<(String, String, bool)> = connectors
        .iter()
        .map(|c| (c.name.clone(), c.spec.kind().to_string(), c.enabled))
        .collect();
    if !names.iter().any(|(n, _, _)| n == "ingest") {
        names.push(("ingest".into(), "files".into(), true));
    }
    let mut rows = Vec::with_capacity(names.len());
    for (name, kind, enabled) in names {
        let status = ConnectorStatus::load(checkpoints, &name).await?;
        if name == "ingest" && status.is_none() {
            continue;
        }
        rows.push(ConnectorRow {
            name,
            kind,
            enabled,
            status,
        });
    }
    Ok(rows)
}

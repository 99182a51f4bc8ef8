//! Connector cursors in the `rapport-checkpoints` KV bucket: a restart resumes where the
//! last *acknowledged* publish left off, so nothing is re-read or lost.
//!
//! Keys: `cp.<connector>.<hash of the source key>` for cursors, `status.<connector>` for the
//! counters `rapport connectors status` shows.

use std::collections::HashMap;

use async_nats::jetstream::kv;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bus::BusError;

#[derive(Clone)]
pub struct Checkpoints {
    kv: kv::Store,
}

impl Checkpoints {
    pub fn new(kv: kv::Store) -> Self {
        Checkpoints { kv }
    }

    /// `cp.<connector>.<hash>`: KV keys allow few characters, so the source key is hashed.
    pub fn key(connector: &str, source_key: &str) -> String {
        format!(
            "{}{}",
            Self::prefix(connector),
            rapport_connectors::ids::content_hash(source_key.as_bytes())
        )
    }

    pub fn prefix(connector: &str) -> String {
        format!("cp.{}.", kv_token(connector))
    }

    pub fn status_key(connector: &str) -> String {
        format!("status.{}", kv_token(connector))
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BusError> {
        match self.kv.get(key).await.map_err(kv_error)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| BusError::Kv(format!("checkpoint {key} is unreadable: {e}"))),
            None => Ok(None),
        }
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BusError> {
        let bytes = serde_json::to_vec(value).expect("checkpoint serializes");
        self.kv
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(kv_error)
    }

    /// Every value under `prefix`, read once at start-up so scans need no per-file lookups.
    pub async fn load_prefix<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<HashMap<String, T>, BusError> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(kv_error)?
            .try_filter(|k| futures::future::ready(k.starts_with(prefix)))
            .try_collect()
            .await
            .map_err(kv_error)?;
        let values = futures::stream::iter(keys)
            .map(|key| async move {
                let value = self.get::<T>(&key).await;
                (key, value)
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let mut out = HashMap::new();
        for (key, value) in values {
            match value {
                Ok(Some(value)) => {
                    out.insert(key, value);
                }
                Ok(None) => {}
                // One unreadable cursor (written by another version, say) costs a re-read of
                // its source, deduplicated; it must not stop the whole connector.
                Err(e) => tracing::warn!(%key, error = %e, "checkpoint ignored"),
            }
        }
        Ok(out)
    }
}

fn kv_error(e: impl std::fmt::Display) -> BusError {
    BusError::Kv(e.to_string())
}

/// KV keys take `[-/_=.a-zA-Z0-9]`; anything else in a connector name becomes `_`.
fn kv_token(name: &str) -> String {
    rapport_connectors::ids::token(name)
}

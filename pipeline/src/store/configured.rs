//! [`ConfiguredStore`]: the backend `rapport.toml` names — the embedded engine under the
//! data dir unless `qdrant.url` is set. The daemon, the CLI and the demo open the store
//! through this, so every command works on either backend.

use std::time::Duration;

use rapport_config::Settings;

use super::remote::{CollectionLayout, RemoteConfig};
use super::{
    AnalysedInteraction, CustomerPoint, CustomerSpace, CustomerStore, EdgeStore, FlagFilter,
    FlagStore, InteractionFilter, InteractionPoint, InteractionStore, RemoteStore, Scored,
    StoreError, Terms,
};
use crate::flags::Flag;
use crate::profile::CustomerProfile;

#[derive(Clone)]
pub enum ConfiguredStore {
    Edge(EdgeStore),
    Remote(RemoteStore),
}

impl ConfiguredStore {
    /// Opens the configured store for text vectors of `dims` dimensions.
    pub async fn open(settings: &Settings, dims: usize) -> Result<ConfiguredStore, StoreError> {
        match &settings.qdrant.url {
            None => Ok(ConfiguredStore::Edge(EdgeStore::open(
                &settings.store_dir(),
                dims,
            )?)),
            Some(url) => {
                let config = RemoteConfig {
                    url: url.clone(),
                    api_key: qdrant_api_key(settings)?,
                    collection_prefix: settings.qdrant.collection_prefix.clone(),
                    timeout: Duration::from_secs(settings.qdrant.timeout_secs),
                    layout: CollectionLayout::from_settings(&settings.qdrant),
                };
                Ok(ConfiguredStore::Remote(
                    RemoteStore::connect(&config, dims).await?,
                ))
            }
        }
    }

    /// Where the store is, for messages.
    pub fn location(settings: &Settings) -> String {
        match &settings.qdrant.url {
            None => settings.store_dir().display().to_string(),
            Some(url) => url.clone(),
        }
    }

    /// Rebuilds the embedded engine's segments into indexed ones after a bulk load; a
    /// Qdrant server optimises by itself.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        match self {
            ConfiguredStore::Edge(store) => store.optimize().await,
            ConfiguredStore::Remote(_) => Ok(()),
        }
    }
}

/// The API key from `qdrant.api_key` or the first line of `qdrant.api_key_file`.
fn qdrant_api_key(settings: &Settings) -> Result<Option<String>, StoreError> {
    let key = match (&settings.qdrant.api_key, &settings.qdrant.api_key_file) {
        (Some(key), _) => key.trim().to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| StoreError::Open {
                path: settings.qdrant.url.clone().unwrap_or_default(),
                message: format!("qdrant.api_key_file {}: {e}", file.display()),
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        (None, None) => return Ok(None),
    };
    Ok((!key.is_empty()).then_some(key))
}

/// Each call goes to the configured backend.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            ConfiguredStore::Edge($store) => $call.await,
            ConfiguredStore::Remote($store) => $call.await,
        }
    };
}

impl InteractionStore for ConfiguredStore {
    async fn upsert_interactions(&self, points: Vec<InteractionPoint>) -> Result<(), StoreError> {
        dispatch!(self, s => s.upsert_interactions(points))
    }

    async fn count_interactions(&self, filter: &InteractionFilter) -> Result<u64, StoreError> {
        dispatch!(self, s => s.count_interactions(filter))
    }

    async fn search_interactions(
        &self,
        vector: Vec<f32>,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<Scored<AnalysedInteraction>>, StoreError> {
        dispatch!(self, s => s.search_interactions(vector, filter, limit))
    }

    async fn match_interactions(
        &self,
        terms: Terms,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<Scored<AnalysedInteraction>>, StoreError> {
        dispatch!(self, s => s.match_interactions(terms, filter, limit))
    }

    async fn interactions(&self, ids: &[String]) -> Result<Vec<AnalysedInteraction>, StoreError> {
        dispatch!(self, s => s.interactions(ids))
    }

    async fn list_interactions(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<AnalysedInteraction>, StoreError> {
        dispatch!(self, s => s.list_interactions(filter, limit))
    }

    async fn list_interactions_with_vectors(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<(AnalysedInteraction, Vec<f32>)>, StoreError> {
        dispatch!(self, s => s.list_interactions_with_vectors(filter, limit))
    }
}

impl CustomerStore for ConfiguredStore {
    async fn merge_customers(&self, from: &str, to: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.merge_customers(from, to))
    }

    async fn upsert_customers(&self, customers: Vec<CustomerPoint>) -> Result<(), StoreError> {
        dispatch!(self, s => s.upsert_customers(customers))
    }

    async fn customers(&self, ids: &[String]) -> Result<Vec<CustomerPoint>, StoreError> {
        dispatch!(self, s => s.customers(ids))
    }

    async fn similar_customers(
        &self,
        vector: Vec<f32>,
        space: CustomerSpace,
        limit: usize,
        exclude: Option<&str>,
    ) -> Result<Vec<Scored<CustomerProfile>>, StoreError> {
        dispatch!(self, s => s.similar_customers(vector, space, limit, exclude))
    }

    async fn all_customers(&self) -> Result<Vec<CustomerProfile>, StoreError> {
        dispatch!(self, s => s.all_customers())
    }
}

impl FlagStore for ConfiguredStore {
    async fn insert_new_flags(
        &self,
        flags: Vec<(Flag, Vec<f32>)>,
    ) -> Result<Vec<Flag>, StoreError> {
        dispatch!(self, s => s.insert_new_flags(flags))
    }

    async fn existing_flags(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.existing_flags(ids))
    }

    async fn flags(&self, filter: &FlagFilter) -> Result<Vec<Flag>, StoreError> {
        dispatch!(self, s => s.flags(filter))
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>, StoreError> {
        dispatch!(self, s => s.flag(id))
    }

    async fn save_flag_status(&self, flag: &Flag) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_flag_status(flag))
    }
}

//! [`RemoteStore`]: a Qdrant server or cluster over gRPC (`qdrant-client`). The only file
//! that names `qdrant_client` types.
//!
//! The same collections, vectors, payloads and point ids as [`super::EdgeStore`], so the
//! one contract suite holds for both. Unlike the embedded engine, a server is shared: every
//! write waits for the server's acknowledgement (`wait = true`, so it is in the server's
//! write-ahead log before the worker acks the message), and writes that must not clobber
//! another process's (flag status) are done so that the server decides.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutputVector;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CollectionParams, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, PointId, PointStruct, PointsIdsList, Query, QueryPointsBuilder, Range,
    RetrievedPoint, ScoredPoint, ScrollPointsBuilder, SetPayloadPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder, VectorsConfigBuilder, VectorsOutput, WriteOrdering, WriteOrderingType,
};
use qdrant_client::qdrant::{
    CreateVectorNameRequestBuilder, Modifier, NamedVectors, SparseVectorCreationConfigBuilder,
    Vector, VectorInput,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde::de::DeserializeOwned;

use super::{
    AnalysedInteraction, CUSTOMER_INDEXES, CUSTOMERS, Clause, CustomerPoint, CustomerSpace,
    CustomerStore, FLAG_INDEXES, FLAGS, FlagFilter, FlagStore, INTERACTION_INDEXES, INTERACTIONS,
    IndexKind, InteractionFilter, InteractionPoint, InteractionStore, RELATIONSHIP_VECTOR,
    SCROLL_PAGE, SEMANTIC_VECTOR, Scored, StoreError, TERMS_VECTOR, TEXT_VECTOR, Terms,
    customer_point_id, flag_point_id, interaction_payload, interaction_point_id, newest_first,
    payload_error, timeline, to_payload,
};
use crate::flags::Flag;
use crate::profile::CustomerProfile;
use rapport_config::relationships::DIMENSIONS;

/// Where a remote store is and how to reach it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// gRPC URL, e.g. `http://qdrant:6334`.
    pub url: String,
    pub api_key: Option<String>,
    /// Prepended to the collection names, so one server can hold several Rapports (and the
    /// contract suite its own throwaway set).
    pub collection_prefix: String,
    pub timeout: Duration,
    /// How the collections are laid out over a cluster.
    pub layout: CollectionLayout,
}

/// A collection's layout over a Qdrant cluster (`[qdrant]` shard_number,
/// replication_factor, write_consistency_factor, on_disk_payload, on_disk_vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionLayout {
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_payload: bool,
    pub on_disk_vectors: bool,
}

impl Default for CollectionLayout {
    /// One server: one shard, one copy.
    fn default() -> Self {
        CollectionLayout {
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_payload: true,
            on_disk_vectors: false,
        }
    }
}

impl CollectionLayout {
    pub fn from_settings(qdrant: &rapport_config::settings::QdrantSettings) -> Self {
        CollectionLayout {
            shard_number: qdrant.shard_number,
            replication_factor: qdrant.replication_factor,
            write_consistency_factor: qdrant.write_consistency_factor,
            on_disk_payload: qdrant.on_disk_payload,
            on_disk_vectors: qdrant.on_disk_vectors,
        }
    }

    /// Replicated writes go through a leader that is re-elected when its node dies
    /// (`medium`), so a write is confirmed by `write_consistency_factor` live copies and
    /// survives one node; a single copy needs no ordering (`weak`, Qdrant's default).
    fn ordering(&self) -> WriteOrdering {
        let kind = if self.replication_factor > 1 {
            WriteOrderingType::Medium
        } else {
            WriteOrderingType::Weak
        };
        WriteOrdering {
            r#type: kind as i32,
        }
    }

    /// How an existing collection differs from this layout, one phrase per setting. Qdrant
    /// fixes the shard count at creation; the rest can be changed with its API.
    #[expect(
        deprecated,
        reason = "on_disk_payload is what a Qdrant 1.18 server reports; payload.memory came in 1.19"
    )]
    fn differences(&self, found: &CollectionParams) -> Vec<String> {
        let mut differ = Vec::new();
        let mut compare = |name: &str, found: u32, wanted: u32| {
            if found != wanted {
                differ.push(format!(
                    "{name} is {found}, the configuration asks {wanted}"
                ));
            }
        };
        compare("shard_number", found.shard_number, self.shard_number);
        compare(
            "replication_factor",
            found.replication_factor.unwrap_or(1),
            self.replication_factor,
        );
        compare(
            "write_consistency_factor",
            found.write_consistency_factor.unwrap_or(1),
            self.write_consistency_factor,
        );
        if found.on_disk_payload != self.on_disk_payload {
            differ.push(format!(
                "on_disk_payload is {}, the configuration asks {}",
                found.on_disk_payload, self.on_disk_payload
            ));
        }
        differ
    }
}

/// The remote store. Cheap to clone: the client multiplexes one channel.
#[derive(Clone)]
pub struct RemoteStore {
    client: std::sync::Arc<Qdrant>,
    interactions: String,
    customers: String,
    flags: String,
    url: String,
    layout: CollectionLayout,
}

impl RemoteStore {
    /// Connects and makes sure the three collections and their payload indexes exist, for
    /// text vectors of `dims` dimensions.
    pub async fn connect(config: &RemoteConfig, dims: usize) -> Result<RemoteStore, StoreError> {
        let open_error = |message: String| StoreError::Open {
            path: config.url.clone(),
            message,
        };
        // The client's own version check prints to stdout (and would corrupt `--json`
        // output); the health check below names the server's version in the log instead.
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(config.timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| open_error(e.to_string()))?;
        let health = client
            .health_check()
            .await
            .map_err(|e| open_error(format!("no Qdrant server answers there: {e}")))?;
        tracing::info!(url = %config.url, version = %health.version, "connected to Qdrant");
        let store = RemoteStore {
            client: std::sync::Arc::new(client),
            interactions: format!("{}{INTERACTIONS}", config.collection_prefix),
            customers: format!("{}{CUSTOMERS}", config.collection_prefix),
            flags: format!("{}{FLAGS}", config.collection_prefix),
            url: config.url.clone(),
            layout: config.layout,
        };
        store
            .ensure_collection(
                &store.interactions,
                &[(TEXT_VECTOR, dims, Distance::Cosine)],
                &INTERACTION_INDEXES,
            )
            .await?;
        store.ensure_terms_vector().await?;
        store
            .ensure_collection(
                &store.customers,
                &[
                    (SEMANTIC_VECTOR, dims, Distance::Cosine),
                    // Euclidean, as in the edge store: see there.
                    (RELATIONSHIP_VECTOR, DIMENSIONS.len(), Distance::Euclid),
                ],
                &CUSTOMER_INDEXES,
            )
            .await?;
        store
            .ensure_collection(
                &store.flags,
                &[(TEXT_VECTOR, dims, Distance::Cosine)],
                &FLAG_INDEXES,
            )
            .await?;
        Ok(store)
    }

    /// The interactions' sparse `terms` vector with IDF, added where missing (a collection
    /// made before keyword search; adding a vector name needs Qdrant 1.18). Another worker
    /// adding it at the same moment is fine.
    async fn ensure_terms_vector(&self) -> Result<(), StoreError> {
        let name = &self.interactions;
        let location = format!("{}/{name}", self.url);
        let open_error = |message: String| StoreError::Open {
            path: location.clone(),
            message,
        };
        match self.terms_modifier().await.map_err(open_error)? {
            Some(Some(m)) if m == Modifier::Idf as i32 => Ok(()),
            Some(other) => Err(open_error(format!(
                "its {TERMS_VECTOR:?} vector has modifier {other:?}, not idf"
            ))),
            None => {
                let created = self
                    .client
                    .create_vector_name(
                        CreateVectorNameRequestBuilder::new(
                            name.as_str(),
                            TERMS_VECTOR,
                            SparseVectorCreationConfigBuilder::new().modifier(Modifier::Idf),
                        )
                        .wait(true),
                    )
                    .await;
                match created {
                    Ok(_) => Ok(()),
                    Err(e) => match self.terms_modifier().await {
                        Ok(Some(_)) => Ok(()),
                        _ => Err(open_error(format!(
                            "adding the {TERMS_VECTOR} vector (Qdrant 1.18 or newer): {e}"
                        ))),
                    },
                }
            }
        }
    }

    /// The interactions' `terms` vector's modifier: `None` without the vector.
    async fn terms_modifier(&self) -> Result<Option<Option<i32>>, String> {
        let info = self
            .client
            .collection_info(self.interactions.as_str())
            .await
            .map_err(|e| e.to_string())?;
        Ok(info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.sparse_vectors_config)
            .and_then(|sparse| sparse.map.get(TERMS_VECTOR).cloned())
            .map(|params| params.modifier))
    }

    /// Removes this store's collections (the contract suite's clean-up).
    pub async fn drop_collections(&self) -> Result<(), StoreError> {
        for name in [&self.interactions, &self.customers, &self.flags] {
            self.client
                .delete_collection(name.as_str())
                .await
                .map_err(failed("delete collection"))?;
        }
        Ok(())
    }

    /// Creates `name` unless it exists (another worker may create it at the same moment:
    /// losing that race is fine) with the configured layout, checks its vector sizes,
    /// reports where an existing collection's layout differs from the configuration (it is
    /// used as it is, never recreated), and creates the indexes (creating an existing index
    /// is a no-op for Qdrant).
    async fn ensure_collection(
        &self,
        name: &str,
        vectors: &[(&str, usize, Distance)],
        indexes: &[(&str, IndexKind)],
    ) -> Result<(), StoreError> {
        let location = format!("{}/{name}", self.url);
        let open_error = |message: String| StoreError::Open {
            path: location.clone(),
            message,
        };
        let exists = self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        if !exists {
            let mut config = VectorsConfigBuilder::default();
            for (vector, dims, distance) in vectors {
                config.add_named_vector_params(
                    *vector,
                    VectorParamsBuilder::new(*dims as u64, *distance)
                        .on_disk(self.layout.on_disk_vectors),
                );
            }
            let layout = &self.layout;
            // on_disk_payload, not payload.memory: a Qdrant 1.18 server reads only the former.
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(config)
                        .shard_number(layout.shard_number)
                        .replication_factor(layout.replication_factor)
                        .write_consistency_factor(layout.write_consistency_factor)
                        .on_disk_payload(layout.on_disk_payload),
                )
                .await;
            if let Err(e) = created
                && !self.client.collection_exists(name).await.unwrap_or(false)
            {
                return Err(open_error(e.to_string()));
            }
        }
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        let params = info.result.and_then(|i| i.config).and_then(|c| c.params);
        if let Some(params) = &params {
            let differences = self.layout.differences(params);
            if !differences.is_empty() {
                tracing::warn!(collection = %location, differences = %differences.join("; "),
                    "the collection's layout differs from [qdrant] in the configuration; it is used as it is (recreate it, or change it with Qdrant's cluster API)");
            }
        }
        let sizes: HashMap<String, u64> = params
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .map(|config| match config {
                VectorsConfigKind::ParamsMap(map) => map
                    .map
                    .into_iter()
                    .map(|(name, params)| (name, params.size))
                    .collect(),
                VectorsConfigKind::Params(params) => HashMap::from([(String::new(), params.size)]),
            })
            .unwrap_or_default();
        for (vector, dims, _) in vectors {
            match sizes.get(*vector) {
                Some(found) if *found as usize == *dims => {}
                Some(found) => {
                    return Err(StoreError::Dimensions {
                        path: location.clone(),
                        found: *found as usize,
                        wanted: *dims,
                    });
                }
                None => return Err(open_error(format!("it has no vector named {vector:?}"))),
            }
        }
        for (field, kind) in indexes {
            let field_type = match kind {
                IndexKind::Keyword => FieldType::Keyword,
                IndexKind::Integer => FieldType::Integer,
            };
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(name, *field, field_type).wait(true),
                )
                .await
                .map_err(|e| open_error(format!("payload index {field}: {e}")))?;
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<PointStruct>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        self.client
            .upsert_points(
                UpsertPointsBuilder::new(collection, points)
                    .wait(true)
                    .ordering(self.layout.ordering()),
            )
            .await
            .map_err(failed("upsert"))?;
        Ok(())
    }

    /// Every point matching `filter`, page by page.
    async fn scroll_all(
        &self,
        collection: &str,
        filter: Option<Filter>,
        with_vectors: bool,
    ) -> Result<Vec<RetrievedPoint>, StoreError> {
        let mut found = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(collection)
                .limit(SCROLL_PAGE as u32)
                .with_payload(true)
                .with_vectors(with_vectors);
            if let Some(filter) = filter.clone() {
                request = request.filter(filter);
            }
            if let Some(offset) = offset.take() {
                request = request.offset(offset);
            }
            let page = self
                .client
                .scroll(request)
                .await
                .map_err(failed("scroll"))?;
            found.extend(page.result);
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(found),
            }
        }
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<PointId>,
        with_vectors: bool,
    ) -> Result<Vec<RetrievedPoint>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .client
            .get_points(
                GetPointsBuilder::new(collection, ids)
                    .with_payload(true)
                    .with_vectors(with_vectors),
            )
            .await
            .map_err(failed("retrieve"))?;
        Ok(found.result)
    }

    async fn nearest(
        &self,
        collection: &str,
        vector: impl Into<VectorInput>,
        using: &str,
        filter: Option<Filter>,
        limit: usize,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let mut request = QueryPointsBuilder::new(collection)
            .query(Query::new_nearest(vector))
            .using(using)
            .limit(limit as u64)
            .with_payload(true);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let found = self.client.query(request).await.map_err(failed("search"))?;
        Ok(found.result)
    }
}

fn failed(operation: &'static str) -> impl Fn(QdrantError) -> StoreError {
    move |e| StoreError::Operation {
        operation,
        message: e.to_string(),
    }
}

fn point_id(uuid: uuid::Uuid) -> PointId {
    PointId::from(uuid.to_string())
}

fn point_id_text(id: &Option<PointId>) -> String {
    match id.as_ref().and_then(|id| id.point_id_options.as_ref()) {
        Some(PointIdOptions::Uuid(uuid)) => uuid.clone(),
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

/// Rapport ids → point ids, by one of the UUIDv5 schemes.
fn point_ids(ids: &[String], scheme: fn(&str) -> uuid::Uuid) -> Vec<PointId> {
    ids.iter().map(|id| point_id(scheme(id))).collect()
}

fn json_payload(id: &str, value: serde_json::Value) -> Result<Payload, StoreError> {
    Payload::try_from(value).map_err(|e| payload_error(id, e))
}

fn from_payload<T: DeserializeOwned>(
    id: &Option<PointId>,
    payload: HashMap<String, qdrant_client::qdrant::Value>,
) -> Result<T, StoreError> {
    let json = serde_json::Value::from(Payload::from(payload));
    serde_json::from_value(json).map_err(|e| payload_error(&point_id_text(id), e))
}

/// A named dense vector of a returned point.
fn named_vector(vectors: &Option<VectorsOutput>, name: &str) -> Vec<f32> {
    match vectors.as_ref().and_then(|v| v.get_vector_by_name(name)) {
        Some(OutputVector::Dense(dense)) => dense.data,
        _ => Vec::new(),
    }
}

fn keyword(field: &str, value: &str) -> Condition {
    Condition::matches(field, value.to_string())
}

fn all_of(must: Vec<Condition>) -> Option<Filter> {
    (!must.is_empty()).then(|| Filter::must(must))
}

/// All of `clauses`, in Qdrant's terms; `None` for no constraint.
fn engine_filter(clauses: Vec<Clause>) -> Option<Filter> {
    let must = clauses
        .into_iter()
        .map(|clause| match clause {
            Clause::Is(field, value) => keyword(field, &value),
            Clause::IsAnyOf(field, values) => Condition::matches(field, values),
            Clause::AtLeast(field, value) => Condition::range(
                field,
                Range {
                    gte: Some(value),
                    ..Range::default()
                },
            ),
        })
        .collect();
    all_of(must)
}

fn scored<T: DeserializeOwned>(points: Vec<ScoredPoint>) -> Result<Vec<Scored<T>>, StoreError> {
    points
        .into_iter()
        .map(|point| {
            Ok(Scored {
                score: point.score,
                item: from_payload(&point.id, point.payload)?,
            })
        })
        .collect()
}

fn named_vectors(vectors: [(&str, Vec<f32>); 2]) -> HashMap<String, Vec<f32>> {
    vectors
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect()
}

fn text_vector(vector: Vec<f32>) -> HashMap<String, Vec<f32>> {
    HashMap::from([(TEXT_VECTOR.to_string(), vector)])
}

impl InteractionStore for RemoteStore {
    async fn upsert_interactions(&self, points: Vec<InteractionPoint>) -> Result<(), StoreError> {
        let points = points
            .into_iter()
            .map(|p| {
                let id = &p.stored.interaction.id;
                let payload = json_payload(id, interaction_payload(&p.stored)?)?;
                let terms = Terms::of_document(&p.stored.interaction.text);
                let vectors = NamedVectors::default()
                    .add_vector(TEXT_VECTOR, Vector::new_dense(p.vector))
                    .add_vector(
                        TERMS_VECTOR,
                        Vector::new_sparse(terms.indices, terms.values),
                    );
                Ok(PointStruct::new(
                    point_id(interaction_point_id(id)),
                    vectors,
                    payload,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.upsert(&self.interactions, points).await
    }

    async fn count_interactions(&self, filter: &InteractionFilter) -> Result<u64, StoreError> {
        let mut request = CountPointsBuilder::new(&self.interactions).exact(true);
        if let Some(filter) = engine_filter(filter.clauses()) {
            request = request.filter(filter);
        }
        let counted = self.client.count(request).await.map_err(failed("count"))?;
        Ok(counted.result.map(|r| r.count).unwrap_or(0))
    }

    async fn search_interactions(
        &self,
        vector: Vec<f32>,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<Scored<AnalysedInteraction>>, StoreError> {
        let filter = engine_filter(filter.clauses());
        scored(
            self.nearest(&self.interactions, vector, TEXT_VECTOR, filter, limit)
                .await?,
        )
    }

    async fn match_interactions(
        &self,
        terms: Terms,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<Scored<AnalysedInteraction>>, StoreError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let filter = engine_filter(filter.clauses());
        let sparse = VectorInput::new_sparse(terms.indices, terms.values);
        scored(
            self.nearest(&self.interactions, sparse, TERMS_VECTOR, filter, limit)
                .await?,
        )
    }

    async fn interactions(&self, ids: &[String]) -> Result<Vec<AnalysedInteraction>, StoreError> {
        self.retrieve(
            &self.interactions,
            point_ids(ids, interaction_point_id),
            false,
        )
        .await?
        .into_iter()
        .map(|point| from_payload(&point.id, point.payload))
        .collect()
    }

    async fn list_interactions(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<AnalysedInteraction>, StoreError> {
        let found = self
            .scroll_all(&self.interactions, engine_filter(filter.clauses()), false)
            .await?
            .into_iter()
            .map(|point| from_payload(&point.id, point.payload))
            .collect::<Result<Vec<AnalysedInteraction>, _>>()?;
        Ok(timeline(found, limit, |s| s))
    }

    async fn list_interactions_with_vectors(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<(AnalysedInteraction, Vec<f32>)>, StoreError> {
        let found = self
            .scroll_all(&self.interactions, engine_filter(filter.clauses()), true)
            .await?
            .into_iter()
            .map(|point| {
                let vector = named_vector(&point.vectors, TEXT_VECTOR);
                Ok((from_payload(&point.id, point.payload)?, vector))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(timeline(found, limit, |(s, _)| s))
    }
}

impl CustomerStore for RemoteStore {
    async fn merge_customers(&self, from: &str, to: &str) -> Result<u64, StoreError> {
        let owned_by_from = || Filter::must([keyword("customer_id", from)]);
        let moved = self
            .client
            .count(
                CountPointsBuilder::new(&self.interactions)
                    .filter(owned_by_from())
                    .exact(true),
            )
            .await
            .map_err(failed("count"))?
            .result
            .map(|r| r.count)
            .unwrap_or(0);
        let owner = json_payload(to, serde_json::json!({ "customer_id": to }))?;
        for collection in [&self.interactions, &self.flags] {
            self.client
                .set_payload(
                    SetPayloadPointsBuilder::new(collection.as_str(), owner.clone())
                        .points_selector(owned_by_from())
                        .wait(true)
                        .ordering(self.layout.ordering()),
                )
                .await
                .map_err(failed("merge"))?;
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.customers)
                    .points(PointsIdsList {
                        ids: vec![point_id(customer_point_id(from))],
                    })
                    .wait(true)
                    .ordering(self.layout.ordering()),
            )
            .await
            .map_err(failed("merge"))?;
        Ok(moved)
    }

    async fn upsert_customers(&self, customers: Vec<CustomerPoint>) -> Result<(), StoreError> {
        let points = customers
            .into_iter()
            .map(|c| {
                let id = &c.profile.customer_id;
                let payload = json_payload(id, to_payload(id, &c.profile)?)?;
                Ok(PointStruct::new(
                    point_id(customer_point_id(id)),
                    named_vectors([
                        (SEMANTIC_VECTOR, c.semantic),
                        (RELATIONSHIP_VECTOR, c.relationship),
                    ]),
                    payload,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.upsert(&self.customers, points).await
    }

    async fn customers(&self, ids: &[String]) -> Result<Vec<CustomerPoint>, StoreError> {
        self.retrieve(&self.customers, point_ids(ids, customer_point_id), true)
            .await?
            .into_iter()
            .map(|point| {
                Ok(CustomerPoint {
                    semantic: named_vector(&point.vectors, SEMANTIC_VECTOR),
                    relationship: named_vector(&point.vectors, RELATIONSHIP_VECTOR),
                    profile: from_payload(&point.id, point.payload)?,
                })
            })
            .collect()
    }

    async fn similar_customers(
        &self,
        vector: Vec<f32>,
        space: CustomerSpace,
        limit: usize,
        exclude: Option<&str>,
    ) -> Result<Vec<Scored<CustomerProfile>>, StoreError> {
        let filter = exclude.map(|id| Filter::must_not([keyword("customer_id", id)]));
        scored(
            self.nearest(&self.customers, vector, space.vector_name(), filter, limit)
                .await?,
        )
    }

    async fn all_customers(&self) -> Result<Vec<CustomerProfile>, StoreError> {
        self.scroll_all(&self.customers, None, false)
            .await?
            .into_iter()
            .map(|point| from_payload(&point.id, point.payload))
            .collect()
    }
}

impl FlagStore for RemoteStore {
    async fn insert_new_flags(
        &self,
        flags: Vec<(Flag, Vec<f32>)>,
    ) -> Result<Vec<Flag>, StoreError> {
        let ids: Vec<String> = flags.iter().map(|(f, _)| f.id.clone()).collect();
        let existing: HashSet<String> = self.existing_flags(&ids).await?.into_iter().collect();
        let mut new: HashMap<String, (Flag, Vec<f32>)> = HashMap::new();
        for (flag, vector) in flags {
            if !existing.contains(&flag.id) {
                new.entry(flag.id.clone()).or_insert((flag, vector));
            }
        }
        let points = new
            .values()
            .map(|(flag, vector)| {
                let payload = json_payload(&flag.id, to_payload(&flag.id, flag)?)?;
                Ok(PointStruct::new(
                    point_id(flag_point_id(&flag.id)),
                    text_vector(vector.clone()),
                    payload,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if !points.is_empty() {
            // Another worker may insert the same flag between the look-up and here, and a
            // person may already have acknowledged it: with an update filter no stored flag
            // matches (every flag has an id), the server inserts the absent ones and
            // leaves every stored one, status included, as it is.
            self.client
                .upsert_points(
                    UpsertPointsBuilder::new(&self.flags, points)
                        .update_filter(Filter::must([Condition::is_empty("id")]))
                        .wait(true),
                )
                .await
                .map_err(failed("upsert"))?;
        }
        Ok(new.into_values().map(|(flag, _)| flag).collect())
    }

    async fn existing_flags(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let point_ids = point_ids(ids, flag_point_id);
        let found: HashSet<String> = self
            .retrieve(&self.flags, point_ids, false)
            .await?
            .iter()
            .map(|point| point_id_text(&point.id))
            .collect();
        Ok(ids
            .iter()
            .filter(|id| found.contains(&flag_point_id(id).to_string()))
            .cloned()
            .collect())
    }

    async fn flags(&self, filter: &FlagFilter) -> Result<Vec<Flag>, StoreError> {
        let wanted = filter.clone();
        let flags = self
            .scroll_all(&self.flags, engine_filter(filter.clauses()), false)
            .await?
            .into_iter()
            .map(|point| from_payload(&point.id, point.payload))
            .collect::<Result<Vec<Flag>, _>>()?;
        Ok(newest_first(
            flags.into_iter().filter(|f| wanted.keeps(f)).collect(),
        ))
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>, StoreError> {
        let point = point_id(flag_point_id(id));
        let Some(stored) = self
            .retrieve(&self.flags, vec![point], false)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(from_payload(&stored.id, stored.payload)?))
    }

    async fn save_flag_status(&self, flag: &Flag) -> Result<(), StoreError> {
        let id = &flag.id;
        // Only the status fields are set, so the vector and evidence stay as stored.
        let status_fields = serde_json::json!({
            "status": flag.status,
            "status_by": flag.status_by,
            "status_at": to_payload(id, flag)?.get("status_at").cloned(),
        });
        self.client
            .set_payload(
                SetPayloadPointsBuilder::new(&self.flags, json_payload(id, status_fields)?)
                    .points_selector(PointsIdsList {
                        ids: vec![point_id(flag_point_id(id))],
                    })
                    .wait(true)
                    .ordering(self.layout.ordering()),
            )
            .await
            .map_err(failed("update"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(deprecated, reason = "what a Qdrant 1.18 server reports")]
    fn params(shards: u32, replicas: u32, consistency: u32) -> CollectionParams {
        CollectionParams {
            shard_number: shards,
            replication_factor: Some(replicas),
            write_consistency_factor: Some(consistency),
            on_disk_payload: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_collection_laid_out_otherwise_is_reported_setting_by_setting() {
        let cluster = CollectionLayout {
            shard_number: 3,
            replication_factor: 3,
            write_consistency_factor: 2,
            ..CollectionLayout::default()
        };
        assert!(cluster.differences(&params(3, 3, 2)).is_empty());
        assert_eq!(
            cluster.differences(&params(1, 1, 1)),
            [
                "shard_number is 1, the configuration asks 3",
                "replication_factor is 1, the configuration asks 3",
                "write_consistency_factor is 1, the configuration asks 2",
            ]
        );
        // Replicated writes survive a leader's node; one copy needs no ordering.
        assert_eq!(cluster.ordering().r#type, WriteOrderingType::Medium as i32);
        assert_eq!(
            CollectionLayout::default().ordering().r#type,
            WriteOrderingType::Weak as i32
        );
    }
}

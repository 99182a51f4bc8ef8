//! [`EdgeStore`]: the embedded Qdrant engine (`qdrant-edge`), one shard directory per
//! collection under `<data_dir>/store/`. The only file that names `qdrant_edge` types.
//!
//! `qdrant-edge` is synchronous and blocking, so every call runs on tokio's blocking pool.
//! Two of its properties shape this file:
//! - it does not replay its write-ahead log when a shard is loaded, so a write is durable
//!   only once the shard is flushed: every write here flushes before it returns, which is
//!   what lets the worker ack afterwards;
//! - `flush` asserts that no other write holds the log, so writes and flushes are
//!   serialised here (queries are not: they only read segments).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldCondition,
    FieldIndexOperations, Filter, Match, MatchValue, NamedQuery, Payload, PayloadFieldSchema,
    PayloadOps, PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct,
    QueryEnum, QueryRequest, Range, ScoringQuery, ScrollRequest, SetPayloadOp, UpdateOperation,
    ValueVariants, VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};
use qdrant_edge::{
    CreateVectorName, Modifier, SparseVector, SparseVectorConfig, Vector, VectorNameConfig,
    VectorNameOperations,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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

/// The embedded store. Cheap to clone; one per process and data dir (the directory is
/// locked while it is open).
#[derive(Clone)]
pub struct EdgeStore {
    inner: Arc<Inner>,
}

struct Inner {
    interactions: EdgeShard,
    customers: EdgeShard,
    flags: EdgeShard,
    /// Serialises writes and flushes (see the module comment).
    write: Mutex<()>,
    /// Held for the store's lifetime: a second process gets a clear error, not a WAL panic.
    _lock: File,
}

impl EdgeStore {
    /// Opens (creating if new) the store under `dir` for text vectors of `dims` dimensions.
    pub fn open(dir: &Path, dims: usize) -> Result<EdgeStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e))?;
        let lock = lock_dir(dir)?;
        let interactions = open_shard(
            &dir.join(INTERACTIONS),
            &[(TEXT_VECTOR, dims, Distance::Cosine)],
            &INTERACTION_INDEXES,
        )?;
        ensure_terms_vector(&dir.join(INTERACTIONS), &interactions)?;
        let customers = open_shard(
            &dir.join(CUSTOMERS),
            &[
                (SEMANTIC_VECTOR, dims, Distance::Cosine),
                // Euclidean: a neutral customer sits near the origin, and cosine would
                // blow their small scores up to full-strength directions.
                (RELATIONSHIP_VECTOR, DIMENSIONS.len(), Distance::Euclid),
            ],
            &CUSTOMER_INDEXES,
        )?;
        let flags = open_shard(
            &dir.join(FLAGS),
            &[(TEXT_VECTOR, dims, Distance::Cosine)],
            &FLAG_INDEXES,
        )?;
        Ok(EdgeStore {
            inner: Arc::new(Inner {
                interactions,
                customers,
                flags,
                write: Mutex::new(()),
                _lock: lock,
            }),
        })
    }

    /// Runs `work` on the blocking pool with the shards.
    async fn blocking<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Operation {
                operation,
                message: e.to_string(),
            })?
    }

    /// Rebuilds segments into indexed ones; worth calling after a bulk load (the engine has
    /// no background optimiser).
    pub async fn optimize(&self) -> Result<(), StoreError> {
        self.blocking("optimize", |inner| {
            let _write = inner.write.lock().unwrap_or_else(|e| e.into_inner());
            for shard in [&inner.interactions, &inner.customers, &inner.flags] {
                shard.optimize().map_err(failed("optimize"))?;
            }
            Ok(())
        })
        .await
    }
}

fn open_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Takes an exclusive `flock` on `<dir>/rapport.lock`, released when the process ends.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("rapport.lock");
    let file = File::create(&path).map_err(|e| open_error(&path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return Err(StoreError::Locked {
            path: dir.display().to_string(),
            message: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(file)
}

/// Loads the shard at `path`, or creates it with `vectors`; then makes sure its payload
/// indexes exist (creating an existing index is a no-op for the engine).
fn open_shard(
    path: &Path,
    vectors: &[(&str, usize, Distance)],
    indexes: &[(&str, IndexKind)],
) -> Result<EdgeShard, StoreError> {
    let shard = if path.join("edge_config.json").exists() {
        EdgeShard::load(path, None).map_err(|e| open_error(path, e))?
    } else {
        std::fs::create_dir_all(path).map_err(|e| open_error(path, e))?;
        let mut config = EdgeConfig::builder();
        for (name, dims, distance) in vectors {
            config = config.vector(*name, EdgeVectorParams::builder(*dims, *distance).build());
        }
        EdgeShard::new(path, config.build()).map_err(|e| open_error(path, e))?
    };
    for (name, dims, _) in vectors {
        match shard.config().vectors.get(*name).map(|v| v.size) {
            Some(found) if found == *dims => {}
            Some(found) => {
                return Err(StoreError::Dimensions {
                    path: path.display().to_string(),
                    found,
                    wanted: *dims,
                });
            }
            None => return Err(open_error(path, format!("it has no vector named {name:?}"))),
        }
    }
    for (field, kind) in indexes {
        let schema = match kind {
            IndexKind::Keyword => PayloadSchemaType::Keyword,
            IndexKind::Integer => PayloadSchemaType::Integer,
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                    field_name: (*field).try_into().expect("index names are valid paths"),
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                }),
            ))
            .map_err(|e| open_error(path, format!("payload index {field}: {e}")))?;
    }
    Ok(shard)
}

/// The interactions' sparse `terms` vector with IDF: created with a new store, added to a
/// store made before keyword search (its points gain terms as they are written again).
fn ensure_terms_vector(path: &Path, shard: &EdgeShard) -> Result<(), StoreError> {
    // Read into a value first: `config()` holds a read lock `update` would wait on.
    let modifier = shard
        .config()
        .sparse_vectors
        .get(TERMS_VECTOR)
        .map(|params| params.modifier);
    match modifier {
        Some(Some(Modifier::Idf)) => Ok(()),
        Some(other) => Err(open_error(
            path,
            format!("its {TERMS_VECTOR:?} vector has modifier {other:?}, not idf"),
        )),
        None => {
            shard
                .update(UpdateOperation::VectorNameOperation(
                    VectorNameOperations::CreateVectorName(CreateVectorName {
                        vector_name: TERMS_VECTOR.into(),
                        config: VectorNameConfig::sparse(SparseVectorConfig {
                            modifier: Some(Modifier::Idf),
                            datatype: None,
                        }),
                    }),
                ))
                .map_err(|e| open_error(path, format!("adding the {TERMS_VECTOR} vector: {e}")))?;
            shard.flush();
            Ok(())
        }
    }
}

/// The one tokeniser both backends' `terms` come from: qdrant's BM25 (Unicode words,
/// lower case, the stop words of all four languages, Snowball stemming). One stemmer per
/// collection, because a query's language is unknown: Danish, whose suffixes Norwegian and
/// Swedish largely share. `avg_len` is a short message's length, not the server's 256.
fn bm25() -> &'static qdrant_edge::bm25_embed::EdgeBm25 {
    static BM25: std::sync::LazyLock<qdrant_edge::bm25_embed::EdgeBm25> =
        std::sync::LazyLock::new(|| {
            let config: qdrant_edge::bm25_embed::EdgeBm25Config =
                serde_json::from_value(serde_json::json!({
                    "language": "danish",
                    "stopwords": { "languages": ["danish", "norwegian", "swedish", "english"] },
                    "avg_len": 30.0
                }))
                .expect("a valid BM25 configuration");
            qdrant_edge::bm25_embed::EdgeBm25::new(config).expect("a valid BM25 configuration")
        });
    &BM25
}

fn terms_of(sparse: SparseVector) -> Terms {
    Terms {
        indices: sparse.indices,
        values: sparse.values,
    }
}

pub(super) fn document_terms(text: &str) -> Terms {
    terms_of(bm25().embed_document(text))
}

pub(super) fn query_terms(text: &str) -> Terms {
    terms_of(bm25().embed_query(text))
}

fn failed(operation: &'static str) -> impl Fn(qdrant_edge::OperationError) -> StoreError {
    move |e| StoreError::Operation {
        operation,
        message: e.to_string(),
    }
}

fn from_payload<T: DeserializeOwned>(
    id: &PointId,
    payload: Option<Payload>,
) -> Result<T, StoreError> {
    let map: Map<String, Value> = payload
        .map(|p| p.0.into_iter().collect())
        .unwrap_or_default();
    serde_json::from_value(Value::Object(map)).map_err(|e| payload_error(&id.to_string(), e))
}

/// A named dense vector of a returned point.
fn named_vector(vectors: &Option<VectorStructInternal>, name: &str) -> Vec<f32> {
    match vectors {
        Some(VectorStructInternal::Named(map)) => match map.get(name) {
            Some(VectorInternal::Dense(v)) => v.clone(),
            _ => Vec::new(),
        },
        Some(VectorStructInternal::Single(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn keyword(field: &str, value: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        field.try_into().expect("field names are valid paths"),
        Match::Value(MatchValue {
            value: ValueVariants::String(value.to_string()),
        }),
    ))
}

fn all_of(must: Vec<Condition>) -> Option<Filter> {
    (!must.is_empty()).then(|| Filter {
        must: Some(must),
        should: None,
        min_should: None,
        must_not: None,
    })
}

/// All of `clauses`, in the engine's terms; `None` for no constraint.
fn engine_filter(clauses: Vec<Clause>) -> Option<Filter> {
    let must = clauses
        .into_iter()
        .map(|clause| match clause {
            Clause::Is(field, value) => keyword(field, &value),
            Clause::IsAnyOf(field, values) => Condition::Filter(Filter {
                should: Some(values.iter().map(|v| keyword(field, v)).collect()),
                must: None,
                min_should: None,
                must_not: None,
            }),
            Clause::AtLeast(field, value) => Condition::Field(FieldCondition::new_range(
                field.try_into().expect("a valid path"),
                Range {
                    gte: Some(OrderedFloat(value)),
                    lt: None,
                    gt: None,
                    lte: None,
                },
            )),
        })
        .collect();
    all_of(must)
}

/// Writes points and flushes, under the write lock.
fn upsert(inner: &Inner, shard: &EdgeShard, points: Vec<PointStruct>) -> Result<(), StoreError> {
    let _write = inner.write.lock().unwrap_or_else(|e| e.into_inner());
    shard
        .update(UpdateOperation::PointOperation(
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(
                points.into_iter().map(Into::into).collect(),
            )),
        ))
        .map_err(failed("upsert"))?;
    shard.flush();
    Ok(())
}

/// Every point matching `filter`, page by page.
fn scroll_all(
    shard: &EdgeShard,
    filter: Option<Filter>,
    with_vector: bool,
) -> Result<Vec<qdrant_edge::Record>, StoreError> {
    let mut found = Vec::new();
    let mut offset = None;
    loop {
        let (page, next) = shard
            .scroll(ScrollRequest {
                offset,
                limit: Some(SCROLL_PAGE),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(with_vector),
                order_by: None,
            })
            .map_err(failed("scroll"))?;
        found.extend(page);
        match next {
            Some(next) => offset = Some(next),
            None => return Ok(found),
        }
    }
}

/// Rapport ids → the engine's point ids, by one of the UUIDv5 schemes.
fn point_ids(ids: &[String], scheme: fn(&str) -> uuid::Uuid) -> Vec<PointId> {
    ids.iter().map(|id| PointId::Uuid(scheme(id))).collect()
}

fn retrieve(
    shard: &EdgeShard,
    ids: &[PointId],
    with_vector: bool,
) -> Result<Vec<qdrant_edge::Record>, StoreError> {
    shard
        .retrieve(
            ids,
            Some(WithPayloadInterface::Bool(true)),
            Some(WithVector::Bool(with_vector)),
        )
        .map_err(failed("retrieve"))
}

fn nearest(
    shard: &EdgeShard,
    vector: VectorInternal,
    using: &str,
    filter: Option<Filter>,
    limit: usize,
) -> Result<Vec<qdrant_edge::ScoredPoint>, StoreError> {
    shard
        .query(QueryRequest {
            prefetches: vec![],
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: vector,
                using: Some(using.into()),
            }))),
            filter,
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        })
        .map_err(failed("search"))
}

/// Search hits with their payloads read as `T`.
fn scored<T: DeserializeOwned>(
    points: Vec<qdrant_edge::ScoredPoint>,
) -> Result<Vec<Scored<T>>, StoreError> {
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

impl InteractionStore for EdgeStore {
    async fn upsert_interactions(&self, points: Vec<InteractionPoint>) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let engine_points = points
            .iter()
            .map(|p| {
                let id = &p.stored.interaction.id;
                let payload = interaction_payload(&p.stored)?;
                let terms = document_terms(&p.stored.interaction.text);
                let vectors = Vectors::new_named([
                    (TEXT_VECTOR, Vector::new_dense(p.vector.clone())),
                    (
                        TERMS_VECTOR,
                        Vector::from(SparseVector {
                            indices: terms.indices,
                            values: terms.values,
                        }),
                    ),
                ]);
                Ok(PointStruct::new(
                    PointId::Uuid(interaction_point_id(id)),
                    vectors,
                    payload,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.blocking("upsert", move |inner| {
            upsert(inner, &inner.interactions, engine_points)
        })
        .await
    }

    async fn count_interactions(&self, filter: &InteractionFilter) -> Result<u64, StoreError> {
        let filter = engine_filter(filter.clauses());
        self.blocking("count", move |inner| {
            let count = inner
                .interactions
                .count(CountRequest {
                    filter,
                    exact: true,
                })
                .map_err(failed("count"))?;
            Ok(count as u64)
        })
        .await
    }

    async fn search_interactions(
        &self,
        vector: Vec<f32>,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<Scored<AnalysedInteraction>>, StoreError> {
        let filter = engine_filter(filter.clauses());
        self.blocking("search", move |inner| {
            scored(nearest(
                &inner.interactions,
                VectorInternal::Dense(vector),
                TEXT_VECTOR,
                filter,
                limit,
            )?)
        })
        .await
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
        let sparse = VectorInternal::Sparse(SparseVector {
            indices: terms.indices,
            values: terms.values,
        });
        self.blocking("search", move |inner| {
            scored(nearest(
                &inner.interactions,
                sparse,
                TERMS_VECTOR,
                filter,
                limit,
            )?)
        })
        .await
    }

    async fn interactions(&self, ids: &[String]) -> Result<Vec<AnalysedInteraction>, StoreError> {
        let ids = point_ids(ids, interaction_point_id);
        self.blocking("retrieve", move |inner| {
            retrieve(&inner.interactions, &ids, false)?
                .into_iter()
                .map(|record| from_payload(&record.id, record.payload))
                .collect()
        })
        .await
    }

    async fn list_interactions(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<AnalysedInteraction>, StoreError> {
        let filter = engine_filter(filter.clauses());
        let found = self
            .blocking("scroll", move |inner| {
                scroll_all(&inner.interactions, filter, false)?
                    .into_iter()
                    .map(|record| from_payload(&record.id, record.payload))
                    .collect::<Result<Vec<AnalysedInteraction>, _>>()
            })
            .await?;
        Ok(timeline(found, limit, |s| s))
    }

    async fn list_interactions_with_vectors(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> Result<Vec<(AnalysedInteraction, Vec<f32>)>, StoreError> {
        let filter = engine_filter(filter.clauses());
        let found = self
            .blocking("scroll", move |inner| {
                scroll_all(&inner.interactions, filter, true)?
                    .into_iter()
                    .map(|record| {
                        let vector = named_vector(&record.vector, TEXT_VECTOR);
                        Ok((from_payload(&record.id, record.payload)?, vector))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        Ok(timeline(found, limit, |(s, _)| s))
    }
}

impl CustomerStore for EdgeStore {
    async fn merge_customers(&self, from: &str, to: &str) -> Result<u64, StoreError> {
        let from = from.to_string();
        let to = to.to_string();
        self.blocking("merge", move |inner| {
            let _write = inner.write.lock().unwrap_or_else(|e| e.into_inner());
            let owned_by_from = || all_of(vec![keyword("customer_id", &from)]);
            let moved = inner
                .interactions
                .count(CountRequest {
                    filter: owned_by_from(),
                    exact: true,
                })
                .map_err(failed("count"))?;
            let mut owner = serde_json::Map::new();
            owner.insert("customer_id".into(), Value::String(to.clone()));
            for shard in [&inner.interactions, &inner.flags] {
                shard
                    .update(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
                        SetPayloadOp {
                            payload: Payload(owner.clone().into_iter().collect()),
                            points: None,
                            filter: owned_by_from(),
                            key: None,
                        },
                    )))
                    .map_err(failed("merge"))?;
                shard.flush();
            }
            inner
                .customers
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePoints {
                        ids: vec![PointId::Uuid(customer_point_id(&from))],
                    },
                ))
                .map_err(failed("merge"))?;
            inner.customers.flush();
            Ok(moved as u64)
        })
        .await
    }

    async fn upsert_customers(&self, customers: Vec<CustomerPoint>) -> Result<(), StoreError> {
        if customers.is_empty() {
            return Ok(());
        }
        let points = customers
            .iter()
            .map(|c| {
                let id = &c.profile.customer_id;
                let vectors = Vectors::new_named([
                    (SEMANTIC_VECTOR, c.semantic.clone()),
                    (RELATIONSHIP_VECTOR, c.relationship.clone()),
                ]);
                Ok(PointStruct::new(
                    PointId::Uuid(customer_point_id(id)),
                    vectors,
                    to_payload(id, &c.profile)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.blocking("upsert", move |inner| {
            upsert(inner, &inner.customers, points)
        })
        .await
    }

    async fn customers(&self, ids: &[String]) -> Result<Vec<CustomerPoint>, StoreError> {
        let ids = point_ids(ids, customer_point_id);
        self.blocking("retrieve", move |inner| {
            retrieve(&inner.customers, &ids, true)?
                .into_iter()
                .map(|record| {
                    Ok(CustomerPoint {
                        semantic: named_vector(&record.vector, SEMANTIC_VECTOR),
                        relationship: named_vector(&record.vector, RELATIONSHIP_VECTOR),
                        profile: from_payload(&record.id, record.payload)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn similar_customers(
        &self,
        vector: Vec<f32>,
        space: CustomerSpace,
        limit: usize,
        exclude: Option<&str>,
    ) -> Result<Vec<Scored<CustomerProfile>>, StoreError> {
        let exclude = exclude.map(str::to_string);
        self.blocking("search", move |inner| {
            let filter = exclude.as_deref().map(|id| Filter {
                must: None,
                should: None,
                min_should: None,
                must_not: Some(vec![keyword("customer_id", id)]),
            });
            scored(nearest(
                &inner.customers,
                VectorInternal::Dense(vector),
                space.vector_name(),
                filter,
                limit,
            )?)
        })
        .await
    }

    async fn all_customers(&self) -> Result<Vec<CustomerProfile>, StoreError> {
        self.blocking("scroll", |inner| {
            scroll_all(&inner.customers, None, false)?
                .into_iter()
                .map(|record| from_payload(&record.id, record.payload))
                .collect()
        })
        .await
    }
}

impl FlagStore for EdgeStore {
    async fn insert_new_flags(
        &self,
        flags: Vec<(Flag, Vec<f32>)>,
    ) -> Result<Vec<Flag>, StoreError> {
        if flags.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking("upsert", move |inner| {
            // Under the write lock, so the check and the insert cannot interleave with
            // another insert of the same flag in this process.
            let _write = inner.write.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<PointId> = flags
                .iter()
                .map(|(f, _)| PointId::Uuid(flag_point_id(&f.id)))
                .collect();
            let existing: std::collections::HashSet<PointId> = retrieve(&inner.flags, &ids, false)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            let mut by_id = HashMap::new();
            for ((flag, vector), id) in flags.into_iter().zip(ids) {
                if !existing.contains(&id) {
                    by_id.entry(id).or_insert((flag, vector));
                }
            }
            let new: Vec<Flag> = by_id.values().map(|(f, _)| f.clone()).collect();
            let points = by_id
                .into_iter()
                .map(|(id, (flag, vector))| {
                    let vectors = Vectors::new_named([(TEXT_VECTOR, vector)]);
                    Ok(PointStruct::new(id, vectors, to_payload(&flag.id, &flag)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if !points.is_empty() {
                inner
                    .flags
                    .update(UpdateOperation::PointOperation(
                        PointOperations::UpsertPoints(PointInsertOperations::PointsList(
                            points.into_iter().map(Into::into).collect(),
                        )),
                    ))
                    .map_err(failed("upsert"))?;
                inner.flags.flush();
            }
            Ok(new)
        })
        .await
    }

    async fn existing_flags(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let point_ids = point_ids(ids, flag_point_id);
        let ids = ids.to_vec();
        self.blocking("retrieve", move |inner| {
            let found: std::collections::HashSet<PointId> =
                retrieve(&inner.flags, &point_ids, false)?
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
            Ok(ids
                .into_iter()
                .zip(point_ids)
                .filter(|(_, p)| found.contains(p))
                .map(|(id, _)| id)
                .collect())
        })
        .await
    }

    async fn flags(&self, filter: &FlagFilter) -> Result<Vec<Flag>, StoreError> {
        let wanted = filter.clone();
        let filter = engine_filter(filter.clauses());
        let flags: Vec<Flag> = self
            .blocking("scroll", move |inner| {
                scroll_all(&inner.flags, filter, false)?
                    .into_iter()
                    .map(|record| from_payload(&record.id, record.payload))
                    .collect::<Result<_, _>>()
            })
            .await?;
        Ok(newest_first(
            flags.into_iter().filter(|f| wanted.keeps(f)).collect(),
        ))
    }

    async fn flag(&self, id: &str) -> Result<Option<Flag>, StoreError> {
        let point_id = PointId::Uuid(flag_point_id(id));
        self.blocking("retrieve", move |inner| {
            let Some(record) = retrieve(&inner.flags, &[point_id], false)?
                .into_iter()
                .next()
            else {
                return Ok(None);
            };
            Ok(Some(from_payload(&record.id, record.payload)?))
        })
        .await
    }

    async fn save_flag_status(&self, flag: &Flag) -> Result<(), StoreError> {
        let point_id = PointId::Uuid(flag_point_id(&flag.id));
        let flag = flag.clone();
        self.blocking("update", move |inner| {
            // The engine rewrites whole points: keep the stored vector beside the new payload.
            let Some(record) = retrieve(&inner.flags, &[point_id], true)?
                .into_iter()
                .next()
            else {
                return Ok(());
            };
            let vector = named_vector(&record.vector, TEXT_VECTOR);
            let point = PointStruct::new(
                point_id,
                Vectors::new_named([(TEXT_VECTOR, vector)]),
                to_payload(&flag.id, &flag)?,
            );
            upsert(inner, &inner.flags, vec![point])
        })
        .await
    }
}

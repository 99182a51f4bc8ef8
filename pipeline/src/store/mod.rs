//! The store (DESIGN.md §5): interactions with their vectors and signals, searchable by
//! meaning and filterable by customer, channel and time; customer profiles with their
//! `semantic` and `relationship` vectors; flags with their status.
//!
//! One [`Store`] contract, two backends behind it: [`EdgeStore`] (embedded `qdrant-edge`
//! under the data dir, the default) and [`RemoteStore`] (a Qdrant server over gRPC, when
//! `qdrant.url` is set, so several worker processes can share one store). Callers speak in
//! Rapport's terms ([`AnalysedInteraction`], [`InteractionFilter`]); each backend translates
//! them to its engine, so queries and the worker never see an engine type and moving engine
//! version touches one file. [`ConfiguredStore`] is whichever the config names.

mod configured;
mod edge;
mod remote;

use std::future::Future;

use rapport_connectors::Channel;

use crate::flags::{Flag, FlagKind, FlagStatus};
pub use crate::interaction::AnalysedInteraction;
use crate::profile::CustomerProfile;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use configured::ConfiguredStore;
pub use edge::EdgeStore;
pub use remote::{CollectionLayout, RemoteConfig, RemoteStore};

/// The `interactions` collection.
pub const INTERACTIONS: &str = "interactions";
/// The named vector of an interaction: the encoder's embedding of its text.
pub const TEXT_VECTOR: &str = "text";
/// The interaction's words as a sparse vector (BM25 term weights; the engine applies IDF):
/// keyword search beside the meaning ([`Store::match_interactions`]; the two are fused in
/// `queries::hybrid_search`, one place for every backend).
pub const TERMS_VECTOR: &str = "terms";

/// A text's words as a sparse vector: hashed term ids and their weights. Both backends
/// make them the same way ([`Terms::of_document`], [`Terms::of_query`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Terms {
    /// A stored message's BM25 term weights (stop words dropped, words stemmed).
    pub fn of_document(text: &str) -> Terms {
        edge::document_terms(text)
    }

    /// A query's terms, weight 1 each.
    pub fn of_query(text: &str) -> Terms {
        edge::query_terms(text)
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Whether the two share a term.
    pub fn overlaps(&self, other: &Terms) -> bool {
        self.indices.iter().any(|i| other.indices.contains(i))
    }
}

/// The `customers` collection and its two named vectors.
pub const CUSTOMERS: &str = "customers";
pub const SEMANTIC_VECTOR: &str = "semantic";
pub const RELATIONSHIP_VECTOR: &str = "relationship";
/// The `flags` collection; a flag's vector is its first evidence's text vector, so the
/// queue can be searched by meaning too.
pub const FLAGS: &str = "flags";

/// Payload field holding `occurred_at` as Unix seconds: range filters and indexes work on
/// numbers, and RFC 3339 strings would need the engine's datetime parser.
const OCCURRED_TS: &str = "occurred_ts";
/// Points read per scroll page.
const SCROLL_PAGE: usize = 1024;

/// The kinds of payload index Rapport's queries need.
#[derive(Debug, Clone, Copy)]
enum IndexKind {
    Keyword,
    Integer,
}

/// Payload indexes the queries filter on, per collection; both backends create them.
const INTERACTION_INDEXES: [(&str, IndexKind); 5] = [
    ("customer_id", IndexKind::Keyword),
    ("conversation_id", IndexKind::Keyword),
    ("channel", IndexKind::Keyword),
    ("id", IndexKind::Keyword),
    (OCCURRED_TS, IndexKind::Integer),
];
const CUSTOMER_INDEXES: [(&str, IndexKind); 2] = [
    ("customer_id", IndexKind::Keyword),
    ("relationship.key", IndexKind::Keyword),
];
const FLAG_INDEXES: [(&str, IndexKind); 4] = [
    ("kind", IndexKind::Keyword),
    ("status", IndexKind::Keyword),
    ("customer_id", IndexKind::Keyword),
    ("id", IndexKind::Keyword),
];

/// Point ids of customers and flags: the same scheme in their own namespaces.
const CUSTOMER_NAMESPACE: Uuid = Uuid::from_u128(0x3c1f_9e0a_7d24_5b6e_8f13_4a9c_2e7b_6d80);
const FLAG_NAMESPACE: Uuid = Uuid::from_u128(0x61a4_d2c8_0b3f_5e97_a5c2_1d8e_4f60_93b7);

pub fn customer_point_id(customer_id: &str) -> Uuid {
    Uuid::new_v5(&CUSTOMER_NAMESPACE, customer_id.as_bytes())
}

pub fn flag_point_id(flag_id: &str) -> Uuid {
    Uuid::new_v5(&FLAG_NAMESPACE, flag_id.as_bytes())
}

/// UUIDv5 namespace of interaction point ids (`Uuid::new_v5(NAMESPACE_URL,
/// "urn:rapport:interaction")`): the same `Interaction.id` always lands on the same point,
/// in every process and every release, so a redelivered message overwrites itself.
const INTERACTION_NAMESPACE: Uuid = Uuid::from_u128(0x8f0d_6a57_4b8e_5c2d_9a41_2f3b_7c6e_1d05);

/// The point id of an interaction.
pub fn interaction_point_id(interaction_id: &str) -> Uuid {
    Uuid::new_v5(&INTERACTION_NAMESPACE, interaction_id.as_bytes())
}

/// An interaction with its embedding, ready to store.
#[derive(Debug, Clone)]
pub struct InteractionPoint {
    pub stored: AnalysedInteraction,
    pub vector: Vec<f32>,
}

/// A customer profile with its vectors, ready to store.
#[derive(Debug, Clone)]
pub struct CustomerPoint {
    pub profile: CustomerProfile,
    pub semantic: Vec<f32>,
    /// The relationship dimensions, in `DIMENSIONS` order.
    pub relationship: Vec<f32>,
}

/// Which of a customer's vectors "similar" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerSpace {
    /// What they write about (decayed mean of their message vectors).
    Semantic,
    /// How they relate to the company (the ten dimensions).
    Relationship,
}

impl CustomerSpace {
    pub const ALL: [CustomerSpace; 2] = [CustomerSpace::Semantic, CustomerSpace::Relationship];

    /// As `--by` and the API's `space` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerSpace::Semantic => "semantic",
            CustomerSpace::Relationship => "relationship",
        }
    }

    pub fn parse(name: &str) -> Option<CustomerSpace> {
        CustomerSpace::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn vector_name(self) -> &'static str {
        match self {
            CustomerSpace::Semantic => SEMANTIC_VECTOR,
            CustomerSpace::Relationship => RELATIONSHIP_VECTOR,
        }
    }
}

/// Which flags a query is about; every field set narrows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagFilter {
    pub kind: Option<FlagKind>,
    pub status: Option<FlagStatus>,
    pub customer_id: Option<String>,
}

/// A search result: how close, and what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<T> {
    pub score: f32,
    pub item: T,
}

/// Which interactions a query is about; every field set narrows it (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InteractionFilter {
    pub customer_id: Option<String>,
    pub conversation_id: Option<String>,
    /// Any of these customers (empty: no constraint): one query for a batch's customers.
    pub any_customer: Vec<String>,
    /// Any of these conversations (empty: no constraint).
    pub any_conversation: Vec<String>,
    pub channel: Option<Channel>,
    /// Occurred at or after.
    pub since: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} is in use by another process (a running `rapport run`?): {message}"
    )]
    Locked { path: String, message: String },
    #[error("cannot open the store at {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "the store at {path} holds {found}-dimensional vectors but the encoder makes {wanted}: \
         it was filled by another model; use another data_dir or remove this one"
    )]
    Dimensions {
        path: String,
        found: usize,
        wanted: usize,
    },
    #[error("store {operation} failed: {message}")]
    Operation {
        operation: &'static str,
        message: String,
    },
    #[error("stored point {id} has a payload Rapport cannot read: {message}")]
    Payload { id: String, message: String },
}

/// What every backend offers: one trait per aggregate (interactions, customers, flags).
/// Writes are idempotent (point id = [`interaction_point_id`]) and durable when they
/// return: the worker acknowledges a message only afterwards. Rules (what a status change
/// means, what a profile holds) are the domain's; a backend only stores and finds.
pub trait Store: InteractionStore + CustomerStore + FlagStore {}

impl<T: InteractionStore + CustomerStore + FlagStore> Store for T {}

/// Interactions with their text and terms vectors.
pub trait InteractionStore: Send + Sync + 'static {
    /// Inserts or overwrites, by interaction id.
    fn upsert_interactions(
        &self,
        points: Vec<InteractionPoint>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn count_interactions(
        &self,
        filter: &InteractionFilter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The `limit` interactions nearest to `vector` (cosine), best first.
    fn search_interactions(
        &self,
        vector: Vec<f32>,
        filter: &InteractionFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Scored<AnalysedInteraction>>, StoreError>> + Send;

    /// The `limit` interactions whose words best match the query `terms` (BM25 with the
    /// collection's IDF), best first; none for empty terms.
    fn match_interactions(
        &self,
        terms: Terms,
        filter: &InteractionFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Scored<AnalysedInteraction>>, StoreError>> + Send;

    /// Interactions by `Interaction.id`; unknown ids are left out.
    fn interactions(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<AnalysedInteraction>, StoreError>> + Send;

    /// Every interaction matching `filter`, oldest first, at most `limit` (the latest).
    fn list_interactions(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AnalysedInteraction>, StoreError>> + Send;

    /// As [`Store::list_interactions`], with each interaction's text vector.
    fn list_interactions_with_vectors(
        &self,
        filter: &InteractionFilter,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(AnalysedInteraction, Vec<f32>)>, StoreError>> + Send;
}

/// Customer profiles with their `semantic` and `relationship` vectors.
pub trait CustomerStore: Send + Sync + 'static {
    /// Moves what is stored under customer `from` to `to`: its interactions and flags
    /// change owner and its profile is removed (rebuild `to`'s afterwards). Returns the
    /// interactions moved. The history half of merging two customers into one.
    fn merge_customers(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Inserts or overwrites, by customer id.
    fn upsert_customers(
        &self,
        customers: Vec<CustomerPoint>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Profiles by customer id, with their vectors; unknown ids are left out.
    fn customers(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<CustomerPoint>, StoreError>> + Send;

    /// The `limit` customers nearest to `vector` in `space`, best first, without
    /// `exclude` (the customer asked about).
    fn similar_customers(
        &self,
        vector: Vec<f32>,
        space: CustomerSpace,
        limit: usize,
        exclude: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Scored<CustomerProfile>>, StoreError>> + Send;

    /// Every profile (for the portfolio), in no particular order.
    fn all_customers(
        &self,
    ) -> impl Future<Output = Result<Vec<CustomerProfile>, StoreError>> + Send;
}

/// The flag queue. A flag's status is changed by the domain ([`Flag::set_status`]) and
/// saved here.
pub trait FlagStore: Send + Sync + 'static {
    /// Stores the flags not stored yet and returns those; a flag already stored keeps
    /// its status and evidence.
    fn insert_new_flags(
        &self,
        flags: Vec<(Flag, Vec<f32>)>,
    ) -> impl Future<Output = Result<Vec<Flag>, StoreError>> + Send;

    /// The ids among `ids` that are stored flags.
    fn existing_flags(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Flags matching `filter`, newest first.
    fn flags(
        &self,
        filter: &FlagFilter,
    ) -> impl Future<Output = Result<Vec<Flag>, StoreError>> + Send;

    /// The flag with this id, if there is one.
    fn flag(&self, id: &str) -> impl Future<Output = Result<Option<Flag>, StoreError>> + Send;

    /// Saves `flag`'s status, who set it and when; its evidence and vector stay as stored.
    /// `flag` is one read with [`FlagStore::flag`].
    fn save_flag_status(&self, flag: &Flag) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn payload_error(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Payload {
        id: id.to_string(),
        message: e.to_string(),
    }
}

/// A value as a JSON payload object.
fn to_payload(id: &str, value: &impl Serialize) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| payload_error(id, e))
}

/// An interaction's payload: the stored record plus [`OCCURRED_TS`] for time filters.
fn interaction_payload(stored: &AnalysedInteraction) -> Result<serde_json::Value, StoreError> {
    let mut payload = to_payload(&stored.interaction.id, stored)?;
    if let serde_json::Value::Object(map) = &mut payload {
        let ts = stored.interaction.occurred_at.unix_timestamp();
        map.insert(OCCURRED_TS.into(), ts.into());
    }
    Ok(payload)
}

/// The flag queue's order: newest first, ties by id.
fn newest_first(mut flags: Vec<Flag>) -> Vec<Flag> {
    flags.sort_by(|a, b| (b.raised_at, &b.id).cmp(&(a.raised_at, &a.id)));
    flags
}

/// Oldest first, the latest `limit`.
fn timeline<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> &AnalysedInteraction,
) -> Vec<T> {
    items.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        (a.interaction.occurred_at, &a.interaction.id)
            .cmp(&(b.interaction.occurred_at, &b.interaction.id))
    });
    let skip = items.len().saturating_sub(limit);
    items.drain(..skip);
    items
}

/// One condition of a query, before an engine's types: every backend turns the same
/// filters into the same clauses, and each translates a clause its own way.
#[derive(Debug, Clone, PartialEq)]
enum Clause {
    /// The keyword field equals the value.
    Is(&'static str, String),
    /// The keyword field equals one of the values.
    IsAnyOf(&'static str, Vec<String>),
    /// The number field is at least the value.
    AtLeast(&'static str, f64),
}

impl InteractionFilter {
    fn clauses(&self) -> Vec<Clause> {
        let mut clauses = Vec::new();
        if let Some(customer) = &self.customer_id {
            clauses.push(Clause::Is("customer_id", customer.clone()));
        }
        if let Some(conversation) = &self.conversation_id {
            clauses.push(Clause::Is("conversation_id", conversation.clone()));
        }
        if let Some(channel) = self.channel {
            clauses.push(Clause::Is("channel", channel.as_str().to_string()));
        }
        if !self.any_customer.is_empty() {
            clauses.push(Clause::IsAnyOf("customer_id", self.any_customer.clone()));
        }
        if !self.any_conversation.is_empty() {
            clauses.push(Clause::IsAnyOf(
                "conversation_id",
                self.any_conversation.clone(),
            ));
        }
        if let Some(since) = self.since {
            clauses.push(Clause::AtLeast(OCCURRED_TS, since.unix_timestamp() as f64));
        }
        clauses
    }
}

impl FlagFilter {
    /// What the store filters on; [`FlagFilter::keeps`] finishes the job.
    fn clauses(&self) -> Vec<Clause> {
        let mut clauses = Vec::new();
        if let Some(kind) = self.kind {
            // Public escalations are the public complaints (`Flag::is`).
            let stored_as = match kind {
                FlagKind::PublicEscalation => FlagKind::Complaint,
                other => other,
            };
            clauses.push(Clause::Is("kind", stored_as.as_str().to_string()));
        }
        if let Some(status) = self.status {
            clauses.push(Clause::Is("status", status.as_str().to_string()));
        }
        if let Some(customer) = &self.customer_id {
            clauses.push(Clause::Is("customer_id", customer.clone()));
        }
        clauses
    }

    /// Whether a flag the clauses matched is one the filter asks for.
    pub fn keeps(&self, flag: &Flag) -> bool {
        self.kind.is_none_or(|kind| flag.is(kind))
    }
}

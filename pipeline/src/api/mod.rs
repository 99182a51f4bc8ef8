//! The HTTP API (DESIGN.md §8): the pipeline's queries as JSON for the dashboard, marketing's
//! scripts and customer service's tools, served by `rapport run` on `api.addr`.
//!
//! Every route but `/healthz` needs `Authorization: Bearer <api.token>`. Errors are JSON
//! objects with a message (`{"error": "…"}`) and a status that says whose fault it is: 400
//! for a bad parameter (named), 401 without the token, 404 for an unknown customer or flag,
//! 413 for a body over `api.max_body_bytes`, 429 over `api.requests_per_second`, 503 when
//! the store fails. The routes are described for machines in `/openapi.json`.

mod auth;
mod dashboard;
pub mod metrics;
mod rate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::checkpoint::Checkpoints;
use crate::flags::{FlagKind, FlagStatus};
use crate::queries::{self, QueryError};
use crate::sources::status::connector_rows;
use crate::store::{ConfiguredStore, CustomerSpace, FlagFilter};
use crate::worker::Analyzer;

pub use crate::bearer::{generated_token, is_authorised, token_or_generated};
pub use metrics::Metrics;

/// The most customers or hits one request may ask for.
const MAX_K: usize = 100;
/// The longest search text, in characters: a query, not a document.
const MAX_QUERY_CHARS: usize = 1_000;

/// What the routes read: the daemon's own store and models (the embedded store admits one
/// process, so the API lives in the process that analyses).
pub struct ApiContext {
    pub store: ConfiguredStore,
    pub analyzer: Arc<Analyzer>,
    pub max_batch_tokens: usize,
    pub checkpoints: Checkpoints,
    /// The configured connectors (replaced on a reload).
    pub connectors: std::sync::RwLock<Vec<rapport_config::Connector>>,
    pub metrics: Arc<Metrics>,
    pub token: String,
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    pub max_body_bytes: usize,
    /// Per client address; 0: no limit.
    pub requests_per_second: u32,
}

type Ctx = State<Arc<ApiContext>>;

/// The API's routes, ready to merge with the webhooks and serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` (the rate limit is per address).
pub fn router(context: Arc<ApiContext>, limits: ApiLimits) -> Router {
    let token = Arc::new(context.token.clone());
    let limiter = Arc::new(rate::Limiter::new(limits.requests_per_second));
    let api = Router::new()
        .route("/api/customers/{id}", get(customer))
        .route("/api/customers/{id}/similar", get(similar))
        .route("/api/search", get(search))
        .route("/api/portfolio", get(portfolio))
        .route("/api/flags", get(flags))
        .route("/api/flags/{id}", post(set_flag_status))
        .route("/api/superusers", get(superusers))
        .route("/api/connectors", get(connectors))
        .route("/api/alerts", get(alerts))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(token, auth::require_token))
        .layer(middleware::from_fn_with_state(limiter, rate::limit))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(context);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(dashboard::routes())
        .merge(api)
}

/// A failed request: its status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::UnknownCustomer(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            QueryError::Store(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::from(QueryError::Store(e))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

fn k_in_range(k: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match k.unwrap_or(default) {
        k @ 1..=MAX_K => Ok(k),
        k => Err(ApiError::bad_request(format!(
            "k={k}: must be between 1 and {MAX_K}"
        ))),
    }
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: see /openapi.json for the API",
    )
}

async fn customer(State(ctx): Ctx, Path(id): Path<String>) -> ApiResult {
    ok(queries::customer(&ctx.store, &ctx.analyzer.catalogue, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarParams {
    k: Option<usize>,
    /// `semantic` (what they write about, the default) or `relationship`.
    space: Option<String>,
}

async fn similar(
    State(ctx): Ctx,
    Path(id): Path<String>,
    params: Result<Query<SimilarParams>, QueryRejection>,
) -> ApiResult {
    let Query(params) = params?;
    let k = k_in_range(params.k, 10)?;
    let space = match params.space.as_deref() {
        None => CustomerSpace::Semantic,
        Some(name) => CustomerSpace::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!("space={name:?}: must be semantic or relationship"))
        })?,
    };
    ok(queries::similar(&ctx.store, &id, k, space).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    channel: Option<String>,
    since: Option<String>,
    k: Option<usize>,
}

async fn search(State(ctx): Ctx, params: Result<Query<SearchParams>, QueryRejection>) -> ApiResult {
    let Query(params) = params?;
    let text = params.q.unwrap_or_default();
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "q: the text to search for is missing",
        ));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "q: longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let channel = match params.channel.as_deref() {
        None | Some("") => None,
        Some(name) => Some(queries::parse_channel(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "channel={name:?}: must be one of email, chat, call, social"
            ))
        })?),
    };
    let since = match params.since.as_deref() {
        None | Some("") => None,
        Some(value) => Some(queries::parse_since(value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "since={value:?}: must be a date (2026-03-01) or a time (2026-03-01T10:00:00Z)"
            ))
        })?),
    };
    let k = k_in_range(params.k, 10)?;
    // The encoder is CPU-bound; off the async threads, beside the workers' batches.
    let analyzer = ctx.analyzer.clone();
    let max_batch_tokens = ctx.max_batch_tokens;
    let embedded_text = text.clone();
    let query = tokio::task::spawn_blocking(move || {
        analyzer
            .classifier
            .encoder()
            .embed(&[embedded_text.as_str()], max_batch_tokens)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .vectors
    .remove(0);
    ok(queries::search(&ctx.store, query, &text, channel, since, k).await?)
}

async fn portfolio(State(ctx): Ctx) -> ApiResult {
    ok(queries::portfolio(&ctx.store, &ctx.analyzer.catalogue).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagParams {
    kind: Option<String>,
    status: Option<String>,
    customer: Option<String>,
}

async fn flags(State(ctx): Ctx, params: Result<Query<FlagParams>, QueryRejection>) -> ApiResult {
    let Query(params) = params?;
    let kind = match params.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(FlagKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "kind={k:?}: must be one of {}",
                FlagKind::ALL.map(FlagKind::as_str).join(", ")
            ))
        })?),
    };
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(parse_status(s)?),
    };
    let filter = FlagFilter {
        kind,
        status,
        customer_id: params.customer.filter(|c| !c.is_empty()),
    };
    ok(queries::flags(&ctx.store, &filter).await?)
}

fn parse_status(s: &str) -> Result<FlagStatus, ApiError> {
    FlagStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status={s:?}: must be one of open, acknowledged, resolved"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagUpdate {
    status: String,
    /// Who works the flag: a name or e-mail, shown in the queue.
    by: String,
}

/// Acknowledges or resolves a flag (or reopens it), recording who and when.
async fn set_flag_status(
    State(ctx): Ctx,
    Path(id): Path<String>,
    body: Result<Json<FlagUpdate>, JsonRejection>,
) -> ApiResult {
    let Json(update) = body?;
    let status = parse_status(&update.status)?;
    let by = update.by.trim();
    if by.is_empty() || by.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "by: who works the flag is missing (or over 200 characters)",
        ));
    }
    match queries::set_flag_status(&ctx.store, &id, status, by, OffsetDateTime::now_utc()).await? {
        Some(flag) => ok(flag),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no flag {id} in the store"),
        )),
    }
}

async fn superusers(State(ctx): Ctx) -> ApiResult {
    ok(queries::superusers(&ctx.store).await?)
}

async fn connectors(State(ctx): Ctx) -> ApiResult {
    let connectors = ctx.connectors.read().expect("connectors lock").clone();
    let rows = connector_rows(&ctx.checkpoints, &connectors)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    ok(rows)
}

/// Per alert rule: what it queued, mailed and failed, and when it retries.
async fn alerts(State(ctx): Ctx) -> ApiResult {
    let rows: Vec<serde_json::Value> = ctx
        .metrics
        .alerts
        .snapshot()
        .into_iter()
        .map(|(rule, stats)| {
            let mut row = serde_json::to_value(stats).expect("stats serialise");
            row["rule"] = rule.into();
            row
        })
        .collect();
    ok(rows)
}

async fn metrics(State(ctx): Ctx) -> Response {
    let body = ctx.metrics.render().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// Serves `router` on `listener` until `stop` turns true, with client addresses for the
/// rate limit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut stop = crate::lifecycle::Shutdown::new(stop);
    let shutdown = async move { stop.wait().await };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

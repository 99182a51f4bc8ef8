//! `POST /ingest/chat`: live chat platforms push transcripts or single messages in
//! Rapport's chat JSON shape. The response comes after JetStream stored the interactions,
//! so a 202 means durable.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use rapport_connectors::ParseContext;
use serde_json::json;
use tokio::sync::Mutex;

use super::{ConnectorState, Sink};
use super::{emit_unit, parse_guarded};

#[derive(Clone)]
pub struct ChatWebhook {
    state: ConnectorState,
    template: ParseContext,
    token: Arc<String>,
    sink: Arc<Mutex<Sink>>,
}

impl ChatWebhook {
    pub fn new(state: ConnectorState, template: ParseContext, token: String, sink: Sink) -> Self {
        ChatWebhook {
            state,
            template,
            token: Arc::new(token),
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// The route, with its body limit, ready to merge into the API router.
    pub fn router(self, route: &str, max_body_bytes: usize) -> Router {
        Router::new()
            .route(route, post(receive))
            .layer(DefaultBodyLimit::max(max_body_bytes))
            .with_state(self)
    }
}

async fn receive(
    State(hook): State<ChatWebhook>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), hook.token.as_bytes()));
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": "missing or wrong bearer token (Authorization: Bearer <api.token>)"}),
            ),
        );
    }
    let source = format!("webhook:{}", hook.state.name);
    let mut ctx = hook.template.clone();
    ctx.source = source.clone();
    ctx.source_time = time::OffsetDateTime::now_utc();
    let units = parse_guarded(body.len(), || {
        rapport_connectors::chat::parse_chat_json(&body, &ctx)
    });
    let mut accepted = 0u64;
    let mut rejected = Vec::new();
    let mut sink = hook.sink.lock().await;
    for unit in units {
        let (start, reason) = (
            unit.start,
            unit.outcome.as_ref().err().map(|e| e.reason.clone()),
        );
        match emit_unit(&mut sink, &hook.state, &source, unit, &body, 0).await {
            Ok(Some(n)) => accepted += n,
            Ok(None) => rejected.push(json!({"offset": start, "reason": reason})),
            Err(e) => return unavailable(&hook, e.to_string()),
        }
    }
    match sink.commit().await {
        Ok(published) => {
            let counters = &hook.state.counters;
            counters.add(&counters.published, published.stored);
            counters.add(&counters.duplicates, published.duplicates);
        }
        Err(e) => return unavailable(&hook, e.to_string()),
    }
    let status = if accepted == 0 && !rejected.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        Json(json!({"accepted": accepted, "rejected": rejected})),
    )
}

fn unavailable(hook: &ChatWebhook, message: String) -> (StatusCode, Json<serde_json::Value>) {
    hook.state.counters.record_error(message.clone());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": format!("not stored, retry later: {message}")})),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

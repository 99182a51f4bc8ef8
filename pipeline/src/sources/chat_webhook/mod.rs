//! `POST /ingest/chat`: live chat platforms push transcripts or single messages in
//! Rapport's chat JSON shape. The response comes after JetStream stored the interactions,
//! so a 202 means durable.
//!
//! The token is checked before the body is read; bodies are capped; at most
//! [`MAX_IN_FLIGHT`] requests are served at once (the rest get 503 with `Retry-After`, so
//! a chat platform retrying through a NATS outage cannot pile up memory); and a request
//! that cannot be stored within [`STORE_LIMIT`] gets 503 too.

use std::sync::Arc;
use std::time::Duration;

use crate::sources::context::SourceContext;
use crate::sources::emit::{emit_unit, parse_guarded};
use crate::sources::kind::{BuiltSource, SourceKind, Tested, Verdict};
use crate::sources::run::SourceError;
use crate::sources::sink::Sink;
use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

/// Requests served at once by one webhook.
pub const MAX_IN_FLIGHT: usize = 64;
/// Longest a request may wait for JetStream to store it.
pub const STORE_LIMIT: Duration = Duration::from_secs(30);

/// `kind = "chat-webhook"`: a route on the API listener, with the API's bearer token.
pub static SOURCE: SourceKind = SourceKind {
    kind: "chat-webhook",
    build: |connector, cx, settings, sink| {
        let rapport_config::ConnectorSpec::ChatWebhook { route } = &connector.spec else {
            unreachable!("the registry hands a chat-webhook source only chat-webhook connectors")
        };
        let token = crate::bearer::api_token(settings).ok_or_else(|| {
            SourceError::permanent(format!(
                "connectors.{}: a chat-webhook needs a bearer token: set api.token, api.token_file or RAPPORT_API_TOKEN",
                connector.name
            ))
        })?;
        let hook = ChatWebhook::new(cx, token, sink);
        Ok(BuiltSource::Pushed(
            hook.router(route, settings.api.max_body_bytes),
        ))
    },
    test: |connector, _, settings| {
        let rapport_config::ConnectorSpec::ChatWebhook { route } = &connector.spec else {
            unreachable!("the registry hands a chat-webhook source only chat-webhook connectors")
        };
        let tested = match crate::bearer::api_token(settings) {
            Some(_) => Tested {
                report: format!(
                    "webhook POST http://{}{route} (bearer token set)",
                    settings.api.addr
                ),
                verdict: Verdict::Ready,
            },
            None => Tested {
                report: "no bearer token: set api.token, api.token_file or RAPPORT_API_TOKEN"
                    .into(),
                verdict: Verdict::Misconfigured,
            },
        };
        Box::pin(std::future::ready(tested))
    },
};

#[derive(Clone)]
pub struct ChatWebhook {
    cx: SourceContext,
    token: Arc<String>,
    sink: Arc<Mutex<Sink>>,
    in_flight: Arc<Semaphore>,
    max_body_bytes: usize,
}

impl ChatWebhook {
    pub fn new(cx: SourceContext, token: String, sink: Sink) -> Self {
        ChatWebhook {
            cx,
            token: Arc::new(token),
            sink: Arc::new(Mutex::new(sink)),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            max_body_bytes: 0,
        }
    }

    /// The route, with its body limit, ready to merge into the API router.
    pub fn router(mut self, route: &str, max_body_bytes: usize) -> Router {
        self.max_body_bytes = max_body_bytes;
        Router::new().route(route, post(receive)).with_state(self)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn receive(State(hook): State<ChatWebhook>, request: Request) -> Response {
    if !crate::bearer::is_authorised(request.headers(), &hook.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <api.token>)",
        );
    }
    let Ok(_permit) = hook.in_flight.clone().try_acquire_owned() else {
        let mut busy = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many requests in flight, retry shortly",
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return busy;
    };
    let body = match axum::body::to_bytes(request.into_body(), hook.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "body over {} bytes (api.max_body_bytes)",
                    hook.max_body_bytes
                ),
            );
        }
    };
    match tokio::time::timeout(STORE_LIMIT, store(&hook, body)).await {
        Ok((status, body)) => (status, body).into_response(),
        Err(_) => {
            hook.cx
                .counters
                .record_error("webhook request not stored within 30 s");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not stored in time, retry later",
            )
        }
    }
}

/// Parses and stores one request body; answers after JetStream acknowledged it.
async fn store(
    hook: &ChatWebhook,
    body: axum::body::Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let source = format!("webhook:{}", hook.cx.name);
    let ctx = hook
        .cx
        .parse_context(&source, time::OffsetDateTime::now_utc());
    let units = parse_guarded(body.len(), || {
        rapport_connectors::chat::parse_chat_json(&body, &ctx)
    });
    let mut accepted = 0u64;
    let mut rejected = Vec::new();
    let mut sink = hook.sink.lock().await;
    for unit in units {
        let start = unit.start;
        match emit_unit(&mut sink, &hook.cx, &source, unit, &body, 0).await {
            Ok(Ok(n)) => accepted += n,
            Ok(Err(reason)) => rejected.push(json!({"offset": start, "reason": reason})),
            Err(e) => return unavailable(hook, e.to_string()),
        }
    }
    if let Err(e) = hook.cx.commit(&mut sink).await {
        return unavailable(hook, e.to_string());
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

/// The bus failed: the details go to the connector's status, the caller learns to retry.
fn unavailable(hook: &ChatWebhook, message: String) -> (StatusCode, Json<serde_json::Value>) {
    hook.cx.counters.record_error(message);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "not stored: the message bus is unavailable; retry later"})),
    )
}

//! Mastodon: timelines and notifications polled over the instance's REST API.
//!
//! **Timelines.** `home` (`/api/v1/timelines/home`), `public` (`/api/v1/timelines/public`),
//! `hashtag:<tag>` (`/api/v1/timelines/tag/<tag>`, the tag percent-encoded) and
//! `notifications` (`/api/v1/notifications`). From notifications only the embedded `status`
//! is read (mentions and replies, subscribed posts, edits, polls); `favourite` and `reblog`
//! notifications embed the account's *own* status, and the other person wrote nothing, so
//! they are skipped like `follow` and the other notifications without a status.
//!
//! **Reading forward without gaps.** Each timeline has a cursor `{ "since_id": "<id>" }` in
//! the `rapport-checkpoints` bucket under `mastodon:<instance>/<timeline>` (notification ids
//! for `notifications`, status ids otherwise). With no cursor, a poll reads the newest page
//! only (`limit=40`) and records its newest id: Rapport starts at "now" rather than reading
//! years of history. With a cursor, it asks for `min_id=<cursor>&limit=40` — the 40 items
//! immediately newer than the cursor — again and again until a page comes back empty. Each
//! page is handed oldest first and committed, and only then does the cursor move to the
//! page's newest id, so a crash re-reads at most one page (JetStream's duplicate window
//! drops what was already stored). Ids are numeric strings, compared by (length, text).
//! Items that are not newer than the cursor are ignored, so a server that ignores `min_id`
//! cannot make a poll loop; one poll reads at most [`MAX_PAGES_PER_POLL`] pages a timeline.
//!
//! **Parsing.** A page (a JSON array) is re-encoded as NDJSON, oldest first, one status a
//! line, and parsed by [`rapport_connectors::social::parse_mastodon`]: replies resolve
//! across the whole page, while one bad status (say an invalid `created_at`) goes to the
//! DLQ alone, with its reason, and the others are stored. Dead letters name the request URL
//! as their source; their offset is the status's byte offset in the re-encoded page. A body
//! that is not a JSON array goes to the DLQ whole and the poll reports an error.
//!
//! **HTTP.** A bearer token when `access_token` is set (never logged, never in an error);
//! User-Agent `rapport/<version>`; connect and request timeouts; the PEM certificates of
//! `ca_file` are trusted besides the Mozilla roots. HTTP 429 waits as long as `Retry-After`
//! or `X-RateLimit-Reset` says; other failures are retried with capped exponential back-off.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rapport_config::{MastodonSpec, Secret};
use rapport_connectors::social::parse_mastodon;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use tracing::{debug, warn};
use url::Url;

use crate::bus::BusError;
use crate::checkpoint::Checkpoints;
use crate::sources::context::SourceContext;
use crate::sources::emit::{emit_unit, parse_guarded};
use crate::sources::kind::{BuiltSource, SourceKind, Tested};
use crate::sources::run::{Pass, Retry, Source, SourceError};
use crate::sources::sink::Sink;

/// Items asked for per request: the most Mastodon returns for timelines and notifications.
pub const PAGE_LIMIT: usize = 40;
/// Pages one poll reads from one timeline (10,000 statuses); the rest wait for the next poll.
pub const MAX_PAGES_PER_POLL: usize = 250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A page bigger than this is refused: 40 statuses are a few hundred KiB at most.
const MAX_BODY_BYTES: usize = 16 << 20;
/// The shortest wait after a rate limit.
const RATE_LIMIT_MIN_WAIT: Duration = Duration::from_secs(1);
/// The longest a rate limit is waited out before asking again.
const RATE_LIMIT_MAX_WAIT: Duration = Duration::from_secs(3600);
/// How long a shutdown waits for handed interactions to be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Error text quoted from a response body, at most.
const MAX_QUOTED_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum MastodonError {
    #[error("cannot set up the HTTP client for Mastodon instance {instance}: {message}")]
    Client { instance: String, message: String },
    #[error("cannot use ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error(
        "unknown Mastodon timeline {name:?}; expected home, notifications, public or hashtag:<tag>"
    )]
    Timeline { name: String },
    #[error("cannot build a request URL from instance {instance}: {message}")]
    Url { instance: String, message: String },
    #[error("GET {url} failed: {message}")]
    Request { url: String, message: String },
    #[error("GET {url} failed with HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GET {url} was rate limited (HTTP 429){}", wait_text(*.retry_after))]
    RateLimited {
        url: String,
        retry_after: Option<Duration>,
    },
    #[error("GET {url} did not return a Mastodon {expected}: {reason}")]
    Unexpected {
        url: String,
        expected: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Bus(#[from] BusError),
}

fn wait_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; the instance asks to wait {} s", d.as_secs()),
        None => String::new(),
    }
}

impl MastodonError {
    /// Errors after which polling the other timelines now is pointless.
    fn stops_poll(&self) -> bool {
        matches!(
            self,
            MastodonError::RateLimited { .. }
                | MastodonError::Bus(_)
                | MastodonError::Request { .. }
        )
    }

    /// How long the instance asked us to wait, for a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MastodonError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<MastodonError> for SourceError {
    fn from(error: MastodonError) -> Self {
        let retry = match (&error, error.retry_after()) {
            (_, Some(asked)) => Retry::After(asked.clamp(RATE_LIMIT_MIN_WAIT, RATE_LIMIT_MAX_WAIT)),
            (MastodonError::CaFile { .. } | MastodonError::Timeline { .. }, None) => Retry::Never,
            _ => Retry::Backoff,
        };
        SourceError {
            message: error.to_string(),
            retry,
        }
    }
}

/// `kind = "mastodon"`: the timelines of one account.
pub static SOURCE: SourceKind = SourceKind {
    kind: "mastodon",
    build: |connector, cx, _, sink| {
        let rapport_config::ConnectorSpec::Mastodon(spec) = &connector.spec else {
            unreachable!("the registry hands a mastodon source only mastodon connectors")
        };
        let reader = MastodonReader::new(cx, spec.clone()).map_err(SourceError::from)?;
        Ok(BuiltSource::Pulled {
            source: Box::new(reader),
            sink,
        })
    },
    test: |connector, _, _| {
        let rapport_config::ConnectorSpec::Mastodon(spec) = &connector.spec else {
            unreachable!("the registry hands a mastodon source only mastodon connectors")
        };
        Box::pin(async move { Tested::from_result(test(spec).await) })
    },
};

/// The cursor of one timeline: every item up to `since_id` is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MastodonCheckpoint {
    pub since_id: String,
}

/// A timeline as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timeline {
    Home,
    Public,
    Notifications,
    Hashtag(String),
}

impl Timeline {
    fn parse(name: &str) -> Result<Timeline, MastodonError> {
        match name {
            "home" => Ok(Timeline::Home),
            "public" => Ok(Timeline::Public),
            "notifications" => Ok(Timeline::Notifications),
            other => match other
                .strip_prefix("hashtag:")
                .map(|t| t.trim_start_matches('#'))
            {
                Some(tag) if !tag.is_empty() => Ok(Timeline::Hashtag(tag.to_string())),
                _ => Err(MastodonError::Timeline {
                    name: name.to_string(),
                }),
            },
        }
    }

    /// The endpoint, without query.
    fn endpoint(&self, instance: &Url) -> Result<Url, MastodonError> {
        match self {
            Timeline::Home => api_url(instance, &["timelines", "home"]),
            Timeline::Public => api_url(instance, &["timelines", "public"]),
            Timeline::Notifications => api_url(instance, &["notifications"]),
            Timeline::Hashtag(tag) => api_url(instance, &["timelines", "tag", tag]),
        }
    }

    /// The first page (`min_id` = `None`) or the page just after `min_id`.
    fn page_url(&self, instance: &Url, min_id: Option<&str>) -> Result<Url, MastodonError> {
        let mut url = self.endpoint(instance)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &PAGE_LIMIT.to_string());
            if let Some(min_id) = min_id {
                query.append_pair("min_id", min_id);
            }
        }
        Ok(url)
    }
}

/// `<instance>/api/v1/<parts>`, each part percent-encoded as one path segment; an instance
/// URL with a path (`https://host/mastodon/`) keeps it.
fn api_url(instance: &Url, parts: &[&str]) -> Result<Url, MastodonError> {
    let mut url = instance.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| MastodonError::Url {
            instance: instance_text(instance),
            message: "not an http(s) URL with a host".into(),
        })?
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(parts);
    Ok(url)
}

/// The instance URL as people write it: no trailing slash, no credentials.
fn instance_text(instance: &Url) -> String {
    let mut url = instance.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().trim_end_matches('/').to_string()
}

/// A page of a timeline, read.
#[derive(Debug, Default)]
struct Page {
    /// The statuses to parse, oldest first.
    statuses: Vec<Value>,
    /// Items on the page newer than the cursor (statuses, or notifications of any kind).
    items: usize,
    /// The newest item id among them: the cursor after this page.
    newest: Option<String>,
}

impl Page {
    /// Reads a JSON array of statuses or notifications, keeping the items newer than `after`.
    fn read(body: &[u8], notifications: bool, after: Option<&str>) -> Result<Page, String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let Value::Array(items) = value else {
            return Err(format!(
                "expected a JSON array, got {}",
                rapport_connectors::error::json_kind(&value)
            ));
        };
        let mut kept: Vec<(Option<String>, Value)> = items
            .into_iter()
            .map(|item| (item_id(&item), item))
            .filter(|(id, _)| match (id, after) {
                (Some(id), Some(after)) => newer(id, after),
                _ => true,
            })
            .collect();
        // Oldest first; items without an id (not seen from Mastodon) keep their place first.
        kept.sort_by(|(a, _), (b, _)| id_order(a.as_deref()).cmp(&id_order(b.as_deref())));
        let newest = kept
            .iter()
            .filter_map(|(id, _)| id.clone())
            .max_by(|a, b| id_order(Some(a)).cmp(&id_order(Some(b))));
        let items = kept.len();
        let statuses = kept
            .into_iter()
            .filter_map(|(_, item)| {
                if notifications {
                    notification_status(item)
                } else {
                    Some(item)
                }
            })
            .collect();
        Ok(Page {
            statuses,
            items,
            newest,
        })
    }
}

/// The status a notification carries, when it is somebody else's words.
fn notification_status(mut notification: Value) -> Option<Value> {
    let kind = notification
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(kind, "favourite" | "reblog") {
        return None;
    }
    match notification.get_mut("status").map(Value::take) {
        Some(status @ Value::Object(_)) => Some(status),
        _ => None,
    }
}

fn item_id(item: &Value) -> Option<String> {
    match item.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Mastodon ids are numeric strings of growing length: (length, text) orders them.
fn id_order(id: Option<&str>) -> Option<(usize, &str)> {
    id.map(|id| (id.len(), id))
}

/// True when id `a` is newer than id `b`.
pub fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Polls the timelines of one Mastodon account.
pub struct MastodonReader {
    cx: SourceContext,
    spec: MastodonSpec,
    http: reqwest::Client,
    /// Cursor per checkpoint key as last loaded or saved (in dry-run the only copy); a key
    /// is present once loaded, `None` meaning no cursor yet.
    cursors: HashMap<String, Option<String>>,
}

impl MastodonReader {
    /// Reads with `cx`'s parse settings; the source is set per request.
    pub fn new(cx: SourceContext, spec: MastodonSpec) -> Result<Self, MastodonError> {
        for name in &spec.timelines {
            Timeline::parse(name)?;
        }
        let http = client(&spec)?;
        Ok(MastodonReader {
            cx,
            spec,
            http,
            cursors: HashMap::new(),
        })
    }

    /// The checkpoint key of a timeline.
    pub fn checkpoint_key(&self, timeline: &str) -> String {
        Checkpoints::key(
            &self.cx.name,
            &format!("mastodon:{}/{timeline}", instance_text(&self.spec.instance)),
        )
    }

    /// Reads every configured timeline once, from its cursor on. Returns the number of
    /// interactions handed to the sink. A timeline that fails does not stop the others
    /// (unless the instance, or the bus, is unreachable or rate limiting); the first error
    /// is returned after all were tried.
    pub async fn poll_once(&mut self, sink: &mut Sink) -> Result<u64, MastodonError> {
        let mut handed = 0;
        let mut first_error = None;
        for name in self.spec.timelines.clone() {
            match self.poll_timeline(&name, sink).await {
                Ok(n) => handed += n,
                Err(e) if e.stops_poll() => return Err(e),
                Err(e) => {
                    warn!(connector = %self.cx.name, timeline = %name, error = %e,
                        "Mastodon timeline failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(handed),
        }
    }

    async fn poll_timeline(&mut self, name: &str, sink: &mut Sink) -> Result<u64, MastodonError> {
        let timeline = Timeline::parse(name)?;
        let notifications = timeline == Timeline::Notifications;
        let key = self.checkpoint_key(name);
        let mut cursor = self.load_cursor(&key).await?;
        let first_poll = cursor.is_none();
        let mut handed = 0;
        for _ in 0..MAX_PAGES_PER_POLL {
            let url = timeline.page_url(&self.spec.instance, cursor.as_deref())?;
            let Some(body) = fetch(&self.http, self.spec.access_token.as_ref(), &url).await? else {
                debug!(connector = %self.cx.name, timeline = %name,
                    "timeline is being prepared by the instance (HTTP 206); next poll");
                break;
            };
            let page = match Page::read(&body, notifications, cursor.as_deref()) {
                Ok(page) => page,
                Err(reason) => {
                    // The body goes to the DLQ with the parser's own reason; the cursor stays.
                    self.hand(&url, body, sink).await?;
                    return Err(MastodonError::Unexpected {
                        url: url.to_string(),
                        expected: page_kind(notifications),
                        reason,
                    });
                }
            };
            let Some(newest) = page.newest else { break };
            debug!(connector = %self.cx.name, timeline = %name, items = page.items,
                statuses = page.statuses.len(), "Mastodon page");
            handed += self.hand(&url, ndjson(&page.statuses), sink).await?;
            self.save_cursor(&key, &newest).await?;
            cursor = Some(newest);
            if first_poll {
                break;
            }
        }
        Ok(handed)
    }

    /// Parses one input, hands its units to the sink and commits. Returns the number of
    /// interactions handed.
    async fn hand(&self, url: &Url, input: Bytes, sink: &mut Sink) -> Result<u64, BusError> {
        let source = url.to_string();
        let ctx = self.cx.parse_context(&source, OffsetDateTime::now_utc());
        let mut handed = 0;
        for mut unit in parse_guarded(input.len(), || parse_mastodon(&input, &ctx)) {
            if let Err(error) = &mut unit.outcome {
                // Line numbers would point into the re-encoded page; the status uri is named.
                error.reason = strip_line_number(&error.reason).to_string();
            }
            if let Ok(n) = emit_unit(sink, &self.cx, &source, unit, &input, 0).await? {
                handed += n;
            }
        }
        self.cx.commit(sink).await?;
        Ok(handed)
    }

    async fn load_cursor(&mut self, key: &str) -> Result<Option<String>, BusError> {
        if let Some(cursor) = self.cursors.get(key) {
            return Ok(cursor.clone());
        }
        let cursor = match &self.cx.checkpoints {
            Some(checkpoints) => checkpoints
                .get::<MastodonCheckpoint>(key)
                .await?
                .map(|cp| cp.since_id),
            None => None,
        };
        self.cursors.insert(key.to_string(), cursor.clone());
        Ok(cursor)
    }

    async fn save_cursor(&mut self, key: &str, since_id: &str) -> Result<(), BusError> {
        if let Some(checkpoints) = &self.cx.checkpoints {
            let checkpoint = MastodonCheckpoint {
                since_id: since_id.to_string(),
            };
            checkpoints.put(key, &checkpoint).await?;
        }
        self.cursors
            .insert(key.to_string(), Some(since_id.to_string()));
        Ok(())
    }

    /// See [`test`].
    pub async fn test(spec: &MastodonSpec) -> Result<String, MastodonError> {
        test(spec).await
    }
}

impl Source for MastodonReader {
    fn context(&self) -> &SourceContext {
        &self.cx
    }

    /// One poll of every timeline. A poll in progress when shutdown comes is abandoned (its
    /// cursor is not moved, so it is read again next time) after a short wait for what it
    /// handed over to be acknowledged.
    fn pass<'a>(&'a mut self, sink: &'a mut Sink) -> BoxFuture<'a, Result<Pass, SourceError>> {
        Box::pin(async move {
            let mut shutdown = self.cx.shutdown.clone();
            tokio::select! {
                polled = self.poll_once(sink) => Ok(Pass { handed: polled?, complete: true }),
                () = shutdown.wait() => {
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, sink.commit()).await;
                    Ok(Pass { handed: 0, complete: false })
                }
            }
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            let mut shutdown = self.cx.shutdown.clone();
            shutdown.sleep(self.spec.poll_interval).await;
            Ok(())
        })
    }
}

/// What a page of this timeline is, for errors.
fn page_kind(notifications: bool) -> &'static str {
    if notifications {
        "notification list"
    } else {
        "timeline"
    }
}

/// One status a line, compact (JSON strings escape their newlines).
fn ndjson(statuses: &[Value]) -> Bytes {
    let mut out = Vec::new();
    for status in statuses {
        serde_json::to_writer(&mut out, status).expect("a JSON value serializes");
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// `line 3: invalid …` → `invalid …`.
fn strip_line_number(reason: &str) -> &str {
    reason
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map_or(reason, |(_, rest)| rest)
}

/// The HTTP client of a connector: User-Agent, timeouts, and `ca_file`'s roots.
fn client(spec: &MastodonSpec) -> Result<reqwest::Client, MastodonError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rapport/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if let Some(path) = &spec.ca_file {
        let ca_error = |message: String| MastodonError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(error_chain(&e)))?;
        if certificates.is_empty() {
            return Err(ca_error("no PEM certificate in the file".into()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| MastodonError::Client {
        instance: instance_text(&spec.instance),
        message: error_chain(&e),
    })
}

/// GETs `url`; `Ok(None)` for HTTP 206 (Mastodon is still building a home feed).
async fn fetch(
    http: &reqwest::Client,
    token: Option<&Secret>,
    url: &Url,
) -> Result<Option<Bytes>, MastodonError> {
    let scrub = |text: String| scrub_token(text, token);
    let request_error = |e: reqwest::Error| MastodonError::Request {
        url: url.to_string(),
        message: scrub(error_chain(&e.without_url())),
    };
    let mut request = http.get(url.clone()).header(ACCEPT, "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request.send().await.map_err(request_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(MastodonError::Request {
                url: url.to_string(),
                message: format!("the response is larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if status.as_u16() == 429 {
        return Err(MastodonError::RateLimited {
            url: url.to_string(),
            retry_after: rate_limit_wait(&headers, OffsetDateTime::now_utc()),
        });
    }
    if !status.is_success() {
        let mut message = status.canonical_reason().unwrap_or("error").to_string();
        if let Some(said) = body_error(&body) {
            message = format!("{message}: {said}");
        }
        if matches!(status.as_u16(), 401 | 403) {
            message.push_str(if token.is_some() {
                " (check the connector's access_token and its scopes)"
            } else {
                " (this timeline needs an access_token)"
            });
        }
        return Err(MastodonError::Http {
            url: url.to_string(),
            status: status.as_u16(),
            message: scrub(message),
        });
    }
    if status.as_u16() == 206 {
        return Ok(None);
    }
    Ok(Some(Bytes::from(body)))
}

/// Mastodon's `{"error": "...", "error_description": "..."}`, one line, capped.
fn body_error(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error").and_then(Value::as_str)?;
    let mut text = error.to_string();
    if let Some(description) = value.get("error_description").and_then(Value::as_str) {
        text = format!("{text} ({description})");
    }
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED_CHARS)
        .collect();
    Some(one_line)
}

/// Never lets the token through, should a server or a library echo it.
fn scrub_token(text: String, token: Option<&Secret>) -> String {
    match token.map(Secret::expose) {
        Some(token) if token.len() >= 4 && text.contains(token) => text.replace(token, "***"),
        _ => text,
    }
}

/// `Retry-After` (seconds or an HTTP date), else Mastodon's `X-RateLimit-Reset` (an ISO 8601
/// time; plain numbers are read as seconds, or as a Unix time when that large).
pub fn rate_limit_wait(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let until = |at: OffsetDateTime| Duration::try_from(at - now).unwrap_or(Duration::ZERO);
    if let Some(value) = header(RETRY_AFTER.as_str()) {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = OffsetDateTime::parse(value, &Rfc2822) {
            return Some(until(at));
        }
    }
    let value = header("x-ratelimit-reset")?;
    if let Ok(at) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(until(at));
    }
    let number = value.parse::<u64>().ok()?;
    if number > 1_000_000_000 {
        OffsetDateTime::from_unix_timestamp(number as i64)
            .ok()
            .map(until)
    } else {
        Some(Duration::from_secs(number))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// `rapport connectors test`: asks the instance who it is (`/api/v1/instance`) and reads
/// the first page of the first timeline, without touching any cursor. Returns a one-paragraph
/// summary for people.
pub async fn test(spec: &MastodonSpec) -> Result<String, MastodonError> {
    let http = client(spec)?;
    let token = spec.access_token.as_ref();
    let instance = instance_text(&spec.instance);
    let info_url = api_url(&spec.instance, &["instance"])?;
    let body = fetch(&http, token, &info_url).await?.unwrap_or_default();
    let info: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| MastodonError::Unexpected {
            url: info_url.to_string(),
            expected: "instance description",
            reason: "not a JSON object".into(),
        })?;
    let text = |key: &str| {
        info.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut summary = format!(
        "Mastodon instance {instance} answers as {:?}, version {}",
        text("title").unwrap_or("(untitled)"),
        text("version").unwrap_or("unknown")
    );
    summary.push_str(match token {
        Some(_) => ", with the configured access token.",
        None => ", without an access token (public data only).",
    });
    let Some(first) = spec.timelines.first() else {
        summary.push_str(" No timelines are configured, so nothing would be read.");
        return Ok(summary);
    };
    let timeline = Timeline::parse(first)?;
    let notifications = timeline == Timeline::Notifications;
    let url = timeline.page_url(&spec.instance, None)?;
    let page = match fetch(&http, token, &url).await? {
        Some(body) => {
            Page::read(&body, notifications, None).map_err(|reason| MastodonError::Unexpected {
                url: url.to_string(),
                expected: page_kind(notifications),
                reason,
            })?
        }
        None => Page::default(),
    };
    let newest = page
        .statuses
        .iter()
        .filter_map(|s| s.get("created_at").and_then(Value::as_str))
        .filter_map(rapport_connectors::text::parse_timestamp)
        .max()
        .and_then(|t| t.format(&Rfc3339).ok());
    let what = if notifications {
        format!(
            "{} notifications, {} of them with a status to read",
            page.items,
            page.statuses.len()
        )
    } else {
        format!("{} statuses", page.items)
    };
    summary.push_str(&format!(" The first page of timeline {first:?} has {what}"));
    summary.push_str(&match newest {
        Some(newest) => format!(", the newest posted {newest}."),
        None => ".".to_string(),
    });
    if spec.timelines.len() > 1 {
        summary.push_str(&format!(
            " Also configured, not checked here: {}.",
            spec.timelines[1..].join(", ")
        ));
    }
    summary.push_str(&format!(
        " Polled every {} s, {} items a request.",
        spec.poll_interval.as_secs(),
        PAGE_LIMIT
    ));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(url: &str) -> Url {
        Url::parse(url).unwrap()
    }

    #[test]
    fn endpoints_keep_the_instance_path_and_encode_tags() {
        let base = instance("https://social.example.no/");
        assert_eq!(
            Timeline::parse("home")
                .unwrap()
                .page_url(&base, Some("110"))
                .unwrap()
                .as_str(),
            "https://social.example.no/api/v1/timelines/home?limit=40&min_id=110"
        );
        assert_eq!(
            Timeline::parse("hashtag:#kundeservice/æøå")
                .unwrap()
                .endpoint(&instance("https://h.example/mastodon"))
                .unwrap()
                .as_str(),
            "https://h.example/mastodon/api/v1/timelines/tag/kundeservice%2F%C3%A6%C3%B8%C3%A5"
        );
        assert_eq!(
            Timeline::parse("notifications")
                .unwrap()
                .endpoint(&base)
                .unwrap()
                .as_str(),
            "https://social.example.no/api/v1/notifications"
        );
        assert!(Timeline::parse("hashtag:").is_err());
        assert!(Timeline::parse("local").is_err());
        assert_eq!(
            instance_text(&instance("https://u:p@social.example.no/")),
            "https://social.example.no"
        );
    }

    #[test]
    fn ids_compare_by_length_then_text() {
        assert!(newer("110000000000000010", "99999999999999999"));
        assert!(newer("12", "11"));
        assert!(!newer("11", "11"));
        assert!(!newer("9", "10"));
    }

    #[test]
    fn pages_are_oldest_first_and_skip_what_the_cursor_covers() {
        let body = br#"[{"id":"12","account":{}},{"id":"10","account":{}},{"id":"9","account":{}},{"id":"11","account":{}}]"#;
        let page = Page::read(body, false, Some("9")).unwrap();
        let ids: Vec<_> = page.statuses.iter().map(|s| s["id"].clone()).collect();
        assert_eq!(ids, ["10", "11", "12"]);
        assert_eq!(page.items, 3);
        assert_eq!(page.newest.as_deref(), Some("12"));
        assert!(Page::read(b"[]", false, None).unwrap().newest.is_none());
        assert!(
            Page::read(br#"{"error":"x"}"#, false, None)
                .unwrap_err()
                .contains("an object")
        );
    }

    #[test]
    fn notifications_yield_other_peoples_statuses() {
        let body = br#"[
            {"id":"5","type":"mention","status":{"id":"100","account":{}}},
            {"id":"4","type":"follow"},
            {"id":"3","type":"favourite","status":{"id":"50","account":{}}},
            {"id":"2","type":"status","status":{"id":"90","account":{}}}]"#;
        let page = Page::read(body, true, None).unwrap();
        let ids: Vec<_> = page.statuses.iter().map(|s| s["id"].clone()).collect();
        assert_eq!(ids, ["90", "100"]);
        assert_eq!(page.items, 4);
        assert_eq!(page.newest.as_deref(), Some("5"), "the notification id");
    }

    #[test]
    fn rate_limit_waits_come_from_retry_after_or_the_reset_time() {
        let now = time::macros::datetime!(2024-03-01 08:00:00 UTC);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-reset",
            "2024-03-01T08:05:00.000Z".parse().unwrap(),
        );
        assert_eq!(
            rate_limit_wait(&headers, now),
            Some(Duration::from_secs(300))
        );
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Fri, 01 Mar 2024 08:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(
            rate_limit_wait(&headers, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(rate_limit_wait(&HeaderMap::new(), now), None);
        let mut past = HeaderMap::new();
        past.insert("x-ratelimit-reset", "2024-03-01T07:00:00Z".parse().unwrap());
        assert_eq!(rate_limit_wait(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn errors_and_reasons_are_cleaned() {
        assert_eq!(
            strip_line_number("line 3: invalid timestamp"),
            "invalid timestamp"
        );
        assert_eq!(strip_line_number("truncated JSON: x"), "truncated JSON: x");
        assert_eq!(
            body_error(br#"{"error":"The access token is invalid"}"#).as_deref(),
            Some("The access token is invalid")
        );
        assert_eq!(body_error(b"<html>"), None);
        let token = Secret::new("s3cret-token");
        assert_eq!(
            scrub_token("Bearer s3cret-token rejected".into(), Some(&token)),
            "Bearer *** rejected"
        );
    }
}

//! The Mastodon connector against a real nats-server and an emulated Mastodon instance: an
//! axum server on a loopback port that serves statuses and notifications from in-memory lists
//! with Mastodon's `min_id` / `since_id` / `max_id` / `limit` paging and checks the bearer
//! token. Every wait is bounded; nothing asserts on wall-clock time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rapport_config::{MastodonSpec, Secret, Settings};
use rapport_connectors::ParseContext;
use rapport_pipeline::bus::{DLQ_STREAM, INTERACTIONS_STREAM};
use rapport_pipeline::lifecycle::Shutdown;
use rapport_pipeline::nats_server::EmbeddedNats;
use rapport_pipeline::sources::mastodon::{MastodonCheckpoint, MastodonError, MastodonReader};
use rapport_pipeline::sources::{self, Sink, SourceContext};
use rapport_pipeline::{Bus, Checkpoints};
use serde::Deserialize;
use serde_json::{Value, json};

const TOKEN: &str = "fjordnett-ops-4f9c2a7e1b";
const NATS_SERVER: &str = "/usr/sbin/nats-server";
const CONNECTOR: &str = "fjordnett-mastodon";
/// Status ids look like Mastodon's snowflakes: 18 digits.
const ID_BASE: u64 = 111_950_000_000_000_000;

// ---------------------------------------------------------------------------------------
// The emulated instance
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct FakeMastodon {
    /// Oldest first, as the instance stores them.
    statuses: Mutex<Vec<Value>>,
    notifications: Mutex<Vec<Value>>,
    /// Path and query of every request, in order.
    requests: Mutex<Vec<String>>,
    /// Answer this many requests with HTTP 429 first.
    rate_limited: AtomicU32,
}

#[derive(Debug, Default, Deserialize)]
struct Paging {
    limit: Option<usize>,
    min_id: Option<String>,
    since_id: Option<String>,
    max_id: Option<String>,
}

impl FakeMastodon {
    fn add_statuses(&self, numbers: impl IntoIterator<Item = u64>) {
        self.statuses
            .lock()
            .unwrap()
            .extend(numbers.into_iter().map(status));
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Logs the request; returns the refusal (429 or 401) where one is due.
    fn refuse(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        self.requests.lock().unwrap().push(uri.to_string());
        if self
            .rate_limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    Json(json!({"error": "Too many requests"})),
                )
                    .into_response(),
            );
        }
        let expected = format!("Bearer {TOKEN}");
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(given) if given == expected => None,
            _ => Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": "The access token is invalid"})),
                )
                    .into_response(),
            ),
        }
    }
}

/// Mastodon's paging over a list kept oldest first: `min_id` gives the `limit` items just
/// after it, otherwise the newest `limit` (after `since_id`, before `max_id`); always
/// returned newest first.
fn page(items: &[Value], paging: &Paging) -> Vec<Value> {
    let number = |v: &Value| v["id"].as_str().unwrap().parse::<u64>().unwrap();
    let bound = |s: &Option<String>| s.as_deref().map(|s| s.parse::<u64>().unwrap());
    let (min, since, max) = (
        bound(&paging.min_id),
        bound(&paging.since_id),
        bound(&paging.max_id),
    );
    let limit = paging.limit.unwrap_or(20).clamp(1, 40);
    let matching: Vec<&Value> = items
        .iter()
        .filter(|v| {
            let n = number(v);
            min.is_none_or(|m| n > m) && since.is_none_or(|s| n > s) && max.is_none_or(|m| n < m)
        })
        .collect();
    let mut chosen: Vec<Value> = if min.is_some() {
        matching.into_iter().take(limit).cloned().collect()
    } else {
        matching.into_iter().rev().take(limit).cloned().collect()
    };
    chosen.sort_by_key(|v| std::cmp::Reverse(number(v)));
    chosen
}

type Fake = Arc<FakeMastodon>;

async fn home(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Response {
    if let Some(refused) = fake.refuse(&uri, &headers) {
        return refused;
    }
    Json(page(&fake.statuses.lock().unwrap(), &paging)).into_response()
}

async fn tag(
    State(fake): State<Fake>,
    Path(tag): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Response {
    if let Some(refused) = fake.refuse(&uri, &headers) {
        return refused;
    }
    let tagged: Vec<Value> = fake
        .statuses
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t["name"] == tag.as_str()))
        })
        .cloned()
        .collect();
    Json(page(&tagged, &paging)).into_response()
}

async fn notifications(
    State(fake): State<Fake>,
    uri: Uri,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Response {
    if let Some(refused) = fake.refuse(&uri, &headers) {
        return refused;
    }
    Json(page(&fake.notifications.lock().unwrap(), &paging)).into_response()
}

async fn instance(State(fake): State<Fake>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(refused) = fake.refuse(&uri, &headers) {
        return refused;
    }
    Json(json!({
        "uri": "social.example.no",
        "title": "Fjordnett Sosial",
        "short_description": "Kundeservice og nyheter fra Fjordnett",
        "version": "4.2.8",
        "languages": ["nb", "da", "sv"],
    }))
    .into_response()
}

/// Starts the instance on 127.0.0.1:0; returns it and its base URL.
async fn start_instance() -> (Fake, String) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/api/v1/instance", get(instance))
        .route("/api/v1/timelines/home", get(home))
        .route("/api/v1/timelines/public", get(home))
        .route("/api/v1/timelines/tag/{tag}", get(tag))
        .route("/api/v1/notifications", get(notifications))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (fake, base)
}

// ---------------------------------------------------------------------------------------
// Realistic statuses
// ---------------------------------------------------------------------------------------

/// (language, user, host, display name, what they wrote)
const CUSTOMERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "da",
        "mette",
        "toot.example.dk",
        "Mette Hansen",
        "Min fiberforbindelse har været nede siden i morges, og ingen tager telefonen. Hvornår kommer der en tekniker?",
    ),
    (
        "nb",
        "kari",
        "snakk.example.no",
        "Kari Nordmann",
        "Tredje gang denne måneden at regningen er feil. Helt uakseptabelt! Jeg vurderer å bytte leverandør.",
    ),
    (
        "sv",
        "erik",
        "mastodon.example.se",
        "Erik Lindqvist",
        "Tack för snabb hjälp med routern igår, allt fungerar nu. Riktigt bra service!",
    ),
    (
        "da",
        "jonas",
        "toot.example.dk",
        "Jonas Møller",
        "Har ventet 40 minutter i telefonkø. Jeres chat siger bare »prøv igen senere«.",
    ),
    (
        "nb",
        "ingrid",
        "snakk.example.no",
        "Ingrid Bakke",
        "Kan noen forklare hvorfor prisen økte med 99 kr uten noe varsel? Det sto ingenting i avtalen.",
    ),
    (
        "sv",
        "annika",
        "mastodon.example.se",
        "Annika Berg",
        "Fakturan stämmer inte, jag har blivit debiterad två gånger för mars. Vem kan jag prata med?",
    ),
];

fn status_id(n: u64) -> String {
    (ID_BASE + n).to_string()
}

fn status_uri(n: u64) -> String {
    let (_, user, host, _, _) = CUSTOMERS[(n as usize) % CUSTOMERS.len()];
    format!("https://{host}/users/{user}/statuses/{}", status_id(n))
}

fn created_at(n: u64) -> String {
    let t = time::macros::datetime!(2024-03-01 08:00:00 UTC) + time::Duration::minutes(n as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .replace('Z', ".000Z")
}

/// Customer status number `n` as the Mastodon API serves it; every fifth answers the one
/// before it.
fn status(n: u64) -> Value {
    let (language, user, host, name, text) = CUSTOMERS[(n as usize) % CUSTOMERS.len()];
    let id = status_id(n);
    let reply_to = (n.is_multiple_of(5) && n > 1).then(|| status_id(n - 1));
    json!({
        "id": id,
        "uri": status_uri(n),
        "url": format!("https://{host}/@{user}/{id}"),
        "created_at": created_at(n),
        "content": format!(
            "<p><span class=\"h-card\"><a href=\"https://social.example.no/@fjordnett\" \
             class=\"u-url mention\">@<span>fjordnett</span></a></span> {text} (sak {n})</p>"
        ),
        "spoiler_text": "",
        "visibility": "public",
        "sensitive": false,
        "language": language,
        "in_reply_to_id": reply_to,
        "in_reply_to_account_id": null,
        "replies_count": 0,
        "reblogs_count": n % 3,
        "favourites_count": n % 4,
        "reblog": null,
        "media_attachments": [],
        "mentions": [{
            "id": "109000000000000001",
            "username": "fjordnett",
            "acct": "fjordnett@social.example.no",
            "url": "https://social.example.no/@fjordnett",
        }],
        "tags": [{"name": "kundeservice", "url": "https://social.example.no/tags/kundeservice"}],
        "account": {
            "id": format!("{}", 109_100_000_000_000_000u64 + (n % CUSTOMERS.len() as u64)),
            "username": user,
            "acct": format!("{user}@{host}"),
            "url": format!("https://{host}/@{user}"),
            "display_name": name,
        },
    })
}

/// A status of the company account itself (what favourite/reblog notifications embed).
fn own_status(n: u64) -> Value {
    let id = status_id(n);
    json!({
        "id": id,
        "uri": format!("https://social.example.no/users/fjordnett/statuses/{id}"),
        "url": format!("https://social.example.no/@fjordnett/{id}"),
        "created_at": created_at(n),
        "content": "<p>Planlagt vedlikehold i natt mellom 01 og 03. Beklager ulempen!</p>",
        "visibility": "public",
        "language": "nb",
        "in_reply_to_id": null,
        "mentions": [],
        "account": {
            "id": "109000000000000001",
            "username": "fjordnett",
            "acct": "fjordnett",
            "url": "https://social.example.no/@fjordnett",
            "display_name": "Fjordnett Kundeservice",
        },
    })
}

fn notification(id: u64, kind: &str, status: Option<Value>) -> Value {
    let mut n = json!({
        "id": id.to_string(),
        "type": kind,
        "created_at": created_at(id % 1000),
        "account": {
            "id": "109100000000000001",
            "username": "kari",
            "acct": "kari@snakk.example.no",
            "url": "https://snakk.example.no/@kari",
            "display_name": "Kari Nordmann",
        },
    });
    if let Some(status) = status {
        n["status"] = status;
    }
    n
}

// ---------------------------------------------------------------------------------------
// Harness: a real nats-server per test, the bus, readers
// ---------------------------------------------------------------------------------------

struct Harness {
    bus: Bus,
    fake: Fake,
    base: String,
    // Dropped last: stops nats-server, then removes its store.
    _nats: EmbeddedNats,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::Builder::new()
        .prefix("rapport-mastodon-")
        .tempdir()
        .unwrap();
    let nats = EmbeddedNats::start(NATS_SERVER, dir.path())
        .await
        .unwrap_or_else(|e| panic!("cannot start {NATS_SERVER}: {e}"));
    let bus = Bus::connect(&nats.url(), &Settings::default())
        .await
        .unwrap_or_else(|e| panic!("cannot connect the bus: {e}"));
    let (fake, base) = start_instance().await;
    Harness {
        bus,
        fake,
        base,
        _nats: nats,
        _dir: dir,
    }
}

impl Harness {
    fn spec(&self, token: &str, timelines: &[&str], poll_interval: Duration) -> MastodonSpec {
        MastodonSpec {
            instance: url::Url::parse(&format!("{}/", self.base)).unwrap(),
            access_token: Some(Secret::new(token)),
            timelines: timelines.iter().map(|t| t.to_string()).collect(),
            poll_interval,
            ca_file: None,
        }
    }

    fn state(&self) -> SourceContext {
        SourceContext::new(
            ParseContext::new(CONNECTOR, String::new()),
            Some(self.checkpoints()),
        )
    }

    fn checkpoints(&self) -> Checkpoints {
        Checkpoints::new(self.bus.checkpoints.clone())
    }

    /// A reader as the daemon builds one (a fresh reader = a restarted process).
    fn reader(&self, spec: MastodonSpec) -> (MastodonReader, SourceContext) {
        self.reader_in(self.state(), spec)
    }

    fn reader_in(
        &self,
        state: SourceContext,
        spec: MastodonSpec,
    ) -> (MastodonReader, SourceContext) {
        let reader = MastodonReader::new(state.clone(), spec).unwrap();
        (reader, state)
    }

    fn sink(&self) -> Sink {
        Sink::bus(&self.bus, 64 * 1024)
    }

    async fn cursor(&self, timeline: &str) -> Option<String> {
        let key = Checkpoints::key(CONNECTOR, &format!("mastodon:{}/{timeline}", self.base));
        self.checkpoints()
            .get::<MastodonCheckpoint>(&key)
            .await
            .unwrap()
            .map(|cp| cp.since_id)
    }

    async fn count(&self, stream: &str) -> u64 {
        let mut stream = self.bus.jetstream.get_stream(stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Every message of a stream: (headers, payload).
    async fn messages(&self, stream: &str) -> Vec<(async_nats::HeaderMap, Vec<u8>)> {
        let mut stream = self.bus.jetstream.get_stream(stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return out;
        }
        for seq in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(seq).await.unwrap();
            out.push((message.headers, message.payload.to_vec()));
        }
        out
    }

    async fn interactions(&self) -> Vec<Value> {
        self.messages(INTERACTIONS_STREAM)
            .await
            .into_iter()
            .map(|(_, payload)| serde_json::from_slice(&payload).unwrap())
            .collect()
    }

    /// Polls a stream's count until it reaches `at_least` or `limit` passes.
    async fn wait_for_count(&self, stream: &str, at_least: u64, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let count = self.count(stream).await;
            if count >= at_least || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ids(interactions: &[Value]) -> Vec<String> {
    interactions
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn expected_ids(numbers: impl IntoIterator<Item = u64>) -> HashSet<String> {
    numbers
        .into_iter()
        .map(|n| format!("mastodon:{}", status_uri(n)))
        .collect()
}

const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn first_poll_takes_the_newest_page_then_reads_forward_without_gaps() {
    let h = harness().await;
    h.fake.add_statuses(1..=50);
    let (mut reader, state) = h.reader(h.spec(TOKEN, &["home"], MINUTE));
    let mut sink = h.sink();

    // No cursor: the newest page only (statuses 11..=50), and its newest id is the cursor.
    assert_eq!(reader.poll_once(&mut sink).await.unwrap(), 40);
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 40);
    assert_eq!(h.cursor("home").await, Some(status_id(50)));

    // 45 new statuses: two pages after the cursor (40 + 5), then an empty one.
    h.fake.add_statuses(51..=95);
    let before = h.fake.requests().len();
    assert_eq!(reader.poll_once(&mut sink).await.unwrap(), 45);
    let requests = h.fake.requests()[before..].to_vec();
    assert_eq!(
        requests,
        [
            format!("/api/v1/timelines/home?limit=40&min_id={}", status_id(50)),
            format!("/api/v1/timelines/home?limit=40&min_id={}", status_id(90)),
            format!("/api/v1/timelines/home?limit=40&min_id={}", status_id(95)),
        ]
    );
    assert_eq!(h.cursor("home").await, Some(status_id(95)));

    // The stream holds each status once, all of 11..=95 and nothing else.
    let stored = h.interactions().await;
    let stored_ids = ids(&stored);
    assert_eq!(stored_ids.len(), 85);
    let unique: HashSet<String> = stored_ids.iter().cloned().collect();
    assert_eq!(unique, expected_ids(11..=95));
    let counters = state.counters.snapshot(CONNECTOR, "mastodon");
    assert_eq!(
        (counters.published, counters.duplicates, counters.failed),
        (85, 0, 0)
    );

    // Pages are handed oldest first, and a reply finds its parent on the same page.
    let position = |n: u64| {
        stored_ids
            .iter()
            .position(|id| *id == format!("mastodon:{}", status_uri(n)))
            .unwrap()
    };
    assert!(position(51) < position(52) && position(89) < position(90));
    let reply = &stored[position(60)];
    assert_eq!(reply["in_reply_to"], format!("mastodon:{}", status_uri(59)));
    assert_eq!(reply["channel"], "social");
    assert_eq!(reply["connector"], CONNECTOR);
    assert_eq!(reply["public"], true);
    let source = reply["attributes"]["url"].as_str().unwrap();
    assert!(source.ends_with(&status_id(60)), "{source}");

    // Nothing new: one empty page, nothing handed.
    assert_eq!(reader.poll_once(&mut sink).await.unwrap(), 0);
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 85);
}

#[tokio::test]
async fn a_restarted_reader_resumes_from_the_stored_cursor() {
    let h = harness().await;
    h.fake.add_statuses(1..=30);
    {
        let (mut first, _) = h.reader(h.spec(TOKEN, &["home"], MINUTE));
        assert_eq!(first.poll_once(&mut h.sink()).await.unwrap(), 30);
    }
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 30);

    // A fresh reader (a new process) with the same KV: nothing new, nothing re-read.
    let (mut restarted, state) = h.reader(h.spec(TOKEN, &["home"], MINUTE));
    let mut sink = h.sink();
    assert_eq!(restarted.poll_once(&mut sink).await.unwrap(), 0);
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 30);
    let last = h.fake.requests().last().cloned().unwrap();
    assert_eq!(
        last,
        format!("/api/v1/timelines/home?limit=40&min_id={}", status_id(30))
    );
    assert_eq!(state.counters.snapshot(CONNECTOR, "mastodon").duplicates, 0);

    // What arrives later is read from the cursor on.
    h.fake.add_statuses(31..=33);
    assert_eq!(restarted.poll_once(&mut sink).await.unwrap(), 3);
    let unique: HashSet<String> = ids(&h.interactions().await).into_iter().collect();
    assert_eq!(unique, expected_ids(1..=33));
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 33);
}

#[tokio::test]
async fn notifications_yield_only_the_statuses_other_people_wrote() {
    let h = harness().await;
    {
        let mut list = h.fake.notifications.lock().unwrap();
        list.push(notification(3_000_001, "mention", Some(status(1))));
        list.push(notification(3_000_002, "follow", None));
        list.push(notification(3_000_003, "favourite", Some(own_status(2))));
        // Kari's follow-up answers her first post: the reply resolves within the page.
        let mut reply = status(7);
        reply["in_reply_to_id"] = json!(status_id(1));
        list.push(notification(3_000_004, "mention", Some(reply)));
        list.push(notification(3_000_005, "reblog", Some(own_status(3))));
    }
    let (mut reader, _) = h.reader(h.spec(TOKEN, &["notifications"], MINUTE));
    let mut sink = h.sink();
    assert_eq!(reader.poll_once(&mut sink).await.unwrap(), 2);
    let stored = h.interactions().await;
    assert_eq!(
        ids(&stored),
        [
            format!("mastodon:{}", status_uri(1)),
            format!("mastodon:{}", status_uri(7)),
        ]
    );
    assert_eq!(
        stored[1]["in_reply_to"],
        format!("mastodon:{}", status_uri(1))
    );
    assert_eq!(
        stored[0]["author"]["ids"][0],
        "handle:mastodon:@kari@snakk.example.no"
    );
    // The cursor is the notification id, not a status id.
    assert_eq!(h.cursor("notifications").await.as_deref(), Some("3000005"));

    h.fake
        .notifications
        .lock()
        .unwrap()
        .push(notification(3_000_006, "mention", Some(status(8))));
    assert_eq!(reader.poll_once(&mut sink).await.unwrap(), 1);
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 3);
    assert!(
        h.fake
            .requests()
            .last()
            .unwrap()
            .ends_with("min_id=3000006")
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_without_the_token() {
    let h = harness().await;
    h.fake.add_statuses(1..=5);
    let wrong = "not-the-right-token-81c3";
    let (mut reader, _) = h.reader(h.spec(wrong, &["home"], MINUTE));
    let error = reader.poll_once(&mut h.sink()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, MastodonError::Http { status: 401, .. }),
        "{error:?}"
    );
    assert!(message.contains(&h.base), "names the instance: {message}");
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("The access token is invalid"), "{message}");
    assert!(
        !message.contains(wrong) && !message.contains(TOKEN),
        "{message}"
    );
    assert!(!format!("{error:?}").contains(wrong));
    assert_eq!(h.count(INTERACTIONS_STREAM).await, 0);
    assert_eq!(h.cursor("home").await, None);

    // `rapport connectors test` says the same.
    let error = MastodonReader::test(&h.spec(wrong, &["home"], MINUTE))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&h.base) && error.contains("401") && !error.contains(wrong),
        "{error}"
    );
}

#[tokio::test]
async fn a_status_with_a_bad_timestamp_goes_to_the_dlq_and_the_rest_is_stored() {
    let h = harness().await;
    h.fake.add_statuses(1..=10);
    h.fake.statuses.lock().unwrap()[3]["created_at"] = json!("2024-02-30T25:00:00Z");
    let (mut reader, state) = h.reader(h.spec(TOKEN, &["home"], MINUTE));
    assert_eq!(reader.poll_once(&mut h.sink()).await.unwrap(), 9);

    assert_eq!(h.count(INTERACTIONS_STREAM).await, 9);
    assert_eq!(h.count(DLQ_STREAM).await, 1);
    let unique: HashSet<String> = ids(&h.interactions().await).into_iter().collect();
    assert_eq!(unique, expected_ids((1..=10).filter(|&n| n != 4)));

    let (headers, raw) = h.messages(DLQ_STREAM).await.remove(0);
    let header = |name: &str| headers.get(name).unwrap().as_str().to_string();
    let reason = header("Rapport-Reason");
    assert!(
        reason.starts_with("invalid timestamp \"2024-02-30T25:00:00Z\" in field \"created_at\""),
        "{reason}"
    );
    assert!(reason.contains(&status_uri(4)), "{reason}");
    assert_eq!(header("Rapport-Stage"), "ingest");
    assert_eq!(header("Rapport-Connector"), CONNECTOR);
    assert_eq!(
        header("Rapport-Source"),
        format!("{}/api/v1/timelines/home?limit=40", h.base)
    );
    let raw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(raw["id"], status_id(4));
    let counters = state.counters.snapshot(CONNECTOR, "mastodon");
    assert_eq!((counters.published, counters.failed), (9, 1));
    assert!(counters.last_error.unwrap().contains("invalid timestamp"));

    // The bad status does not hold the cursor back.
    assert_eq!(h.cursor("home").await, Some(status_id(10)));
}

#[tokio::test]
async fn run_polls_until_shutdown_and_stops_promptly() {
    let h = harness().await;
    h.fake.add_statuses(1..=5);
    // A long interval: after the first poll the reader is sleeping when shutdown comes.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (mut reader, _) = h.reader_in(
        h.state().with_shutdown(Shutdown::new(shutdown)),
        h.spec(TOKEN, &["home"], Duration::from_secs(3600)),
    );
    let mut sink = h.sink();
    let task = tokio::spawn(async move {
        sources::run(&mut reader, &mut sink).await.unwrap();
    });
    assert_eq!(
        h.wait_for_count(INTERACTIONS_STREAM, 5, Duration::from_secs(30))
            .await,
        5
    );
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run() stops within 10 s of shutdown")
        .unwrap();
}

#[tokio::test]
async fn run_waits_out_a_rate_limit_and_records_it() {
    let h = harness().await;
    h.fake.add_statuses(1..=4);
    h.fake.rate_limited.store(1, Ordering::SeqCst);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (mut reader, state) = h.reader_in(
        h.state().with_shutdown(Shutdown::new(shutdown)),
        h.spec(TOKEN, &["home"], Duration::from_secs(3600)),
    );
    let mut sink = h.sink();
    let task = tokio::spawn(async move {
        sources::run(&mut reader, &mut sink).await.unwrap();
    });
    // The first request gets 429 with Retry-After: 1; the retry after it reads the page.
    assert_eq!(
        h.wait_for_count(INTERACTIONS_STREAM, 4, Duration::from_secs(30))
            .await,
        4
    );
    assert_eq!(h.fake.requests().len(), 2);
    let last_error = state
        .counters
        .snapshot(CONNECTOR, "mastodon")
        .last_error
        .unwrap();
    assert!(
        last_error.contains("429") && last_error.contains("wait 1 s"),
        "{last_error}"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run() stops within 10 s of shutdown")
        .unwrap();
}

#[tokio::test]
async fn connection_test_summarises_the_instance_and_the_first_timeline() {
    let h = harness().await;
    h.fake.add_statuses(1..=50);
    let summary = MastodonReader::test(&h.spec(TOKEN, &["hashtag:kundeservice", "home"], MINUTE))
        .await
        .unwrap();
    for part in [
        h.base.as_str(),
        "\"Fjordnett Sosial\"",
        "version 4.2.8",
        "with the configured access token",
        "timeline \"hashtag:kundeservice\" has 40 statuses",
        "the newest posted 2024-03-01T08:50:00Z",
        "not checked here: home",
    ] {
        assert!(summary.contains(part), "{part:?} missing from: {summary}");
    }
    assert!(!summary.contains(TOKEN));
    // Testing moves no cursor.
    assert_eq!(h.cursor("hashtag:kundeservice").await, None);
    assert_eq!(
        h.fake.requests().last().unwrap(),
        "/api/v1/timelines/tag/kundeservice?limit=40"
    );
}

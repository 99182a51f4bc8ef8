//! The HTTP API over real HTTP: `rapport run` on a store the demo filled, its own
//! nats-server, a files connector feeding it, and every route driven with reqwest: the
//! answers, the bearer token, bad parameters, unknown ids, body and rate limits.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::api::{ApiDaemon, TOKEN, files_connector_config, fill_with_demo};
use support::{RAPPORT, TestNats};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(TOKEN),
        )
        .await
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(TOKEN)
                .json(body),
        )
        .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        (status, body)
    }

    /// A 4xx with a JSON message that mentions `needle`.
    async fn expect_error(&self, path: &str, status: StatusCode, needle: &str) {
        let (got, body) = self.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_every_route_with_auth_and_clear_errors() {
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    fill_with_demo(data.path(), &cache);
    let nats = TestNats::start().await;
    let inbox = tempfile::tempdir().unwrap();
    let config = files_connector_config(data.path(), "inbox", inbox.path());
    let daemon = ApiDaemon::start(
        data.path(),
        &cache,
        &nats.url(),
        Some(&config),
        &[("RAPPORT_API_MAX_BODY_BYTES", "4096")],
    )
    .await;
    let port = daemon.port;
    let client = Client {
        http: reqwest::Client::new(),
        base: daemon.base.clone(),
    };

    // Everything else needs the token.
    for token in [None, Some("wrong")] {
        let mut request = client.http.get(format!("{}/api/portfolio", client.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("bearer token"));
    }

    // The portfolio covers every customer of the corpus.
    let (status, portfolio) = client.get("/api/portfolio").await;
    assert_eq!(status, StatusCode::OK);
    let customers: u64 = portfolio
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(customers, 46, "{portfolio}");

    // The flag queue, filtered; a bad filter is named.
    let (_, superuser_flags) = client.get("/api/flags?kind=superuser").await;
    let superuser_flags = superuser_flags.as_array().unwrap();
    assert_eq!(superuser_flags.len(), 1, "{superuser_flags:?}");
    let superuser = superuser_flags[0]["customer_id"].as_str().unwrap();
    assert_eq!(superuser, "crm-jens-kofoed");
    let (_, open) = client.get("/api/flags?status=open").await;
    assert!(open.as_array().unwrap().len() > 20);
    client
        .expect_error(
            "/api/flags?kind=bogus",
            StatusCode::BAD_REQUEST,
            "kind=\"bogus\"",
        )
        .await;
    client
        .expect_error("/api/flags?colour=red", StatusCode::BAD_REQUEST, "colour")
        .await;

    // Superusers: the one who answers the others.
    let (_, superusers) = client.get("/api/superusers").await;
    assert_eq!(superusers[0]["customer_id"], superuser);
    assert!(superusers[0]["answers_to_others"].as_u64().unwrap() >= 5);

    // One customer, whole; an unknown one is a 404 that names it.
    let (status, view) = client.get(&format!("/api/customers/{superuser}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["profile"]["customer_id"], superuser);
    assert!(!view["timeline"].as_array().unwrap().is_empty());
    assert!(!view["flags"].as_array().unwrap().is_empty());
    client
        .expect_error("/api/customers/nobody", StatusCode::NOT_FOUND, "nobody")
        .await;

    // Similar customers in both spaces, never the customer asked about.
    for space in ["semantic", "relationship"] {
        let (status, similar) = client
            .get(&format!(
                "/api/customers/{superuser}/similar?k=3&space={space}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{similar}");
        let similar = similar.as_array().unwrap();
        assert_eq!(similar.len(), 3);
        assert!(similar.iter().all(|s| s["customer_id"] != superuser));
    }
    client
        .expect_error(
            &format!("/api/customers/{superuser}/similar?k=0"),
            StatusCode::BAD_REQUEST,
            "k=0",
        )
        .await;
    client
        .expect_error(
            &format!("/api/customers/{superuser}/similar?space=vibes"),
            StatusCode::BAD_REQUEST,
            "space",
        )
        .await;
    client
        .expect_error(
            "/api/customers/nobody/similar",
            StatusCode::NOT_FOUND,
            "nobody",
        )
        .await;

    // Semantic search across languages, filtered by channel and date.
    let (status, found) = client
        .get("/api/search?q=charged%20twice%20for%20one%20order&channel=social&since=2026-01-01")
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let found = found.as_array().unwrap();
    assert!(!found.is_empty());
    for group in found {
        for hit in group["hits"].as_array().unwrap() {
            assert_eq!(hit["channel"], "social");
        }
    }
    let texts: String = found
        .iter()
        .take(3)
        .flat_map(|g| g["hits"].as_array().unwrap().iter())
        .map(|h| h["text"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        texts.contains("dobbelt") || texts.contains("twice") || texts.contains("to ganger"),
        "the double charge is found: {texts}"
    );
    client
        .expect_error("/api/search", StatusCode::BAD_REQUEST, "q:")
        .await;
    client
        .expect_error(
            "/api/search?q=x&channel=fax",
            StatusCode::BAD_REQUEST,
            "channel",
        )
        .await;
    client
        .expect_error(
            "/api/search?q=x&since=yesterday",
            StatusCode::BAD_REQUEST,
            "since",
        )
        .await;

    // Customer service acknowledges a flag: who and when are kept.
    let flag_id = superuser_flags[0]["id"].as_str().unwrap();
    let path = format!("/api/flags/{}", urlencode(flag_id));
    let (status, updated) = client
        .post(&path, &json!({"status": "acknowledged", "by": "mette"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "acknowledged");
    assert_eq!(updated["status_by"], "mette");
    assert!(updated["status_at"].is_string());
    let (_, acknowledged) = client.get("/api/flags?status=acknowledged").await;
    assert_eq!(acknowledged.as_array().unwrap().len(), 1);
    assert_eq!(acknowledged[0]["id"], flag_id);
    let (status, body) = client
        .post(
            "/api/flags/complaint:nope",
            &json!({"status": "resolved", "by": "mette"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = client
        .post(&path, &json!({"status": "done", "by": "mette"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("status=\"done\""));
    let (status, body) = client.post(&path, &json!({"status": "resolved"})).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"].as_str().unwrap().contains("by"), "{body}");
    let (status, body) = client
        .post(
            &path,
            &json!({"status": "resolved", "by": "x".repeat(5000)}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // The query commands ask the daemon's API while it holds the store.
    let cli = |args: &[&str]| {
        Command::new(RAPPORT)
            .args(args)
            .env_clear()
            .env("RAPPORT_DATA_DIR", data.path())
            .env("RAPPORT_API_ADDR", format!("127.0.0.1:{port}"))
            .env("RAPPORT_API_TOKEN", TOKEN)
            .env("RAPPORT_MODELS_CACHE", &cache)
            .output()
            .unwrap()
    };
    let out = cli(&["flags", "--status", "acknowledged", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed, acknowledged);
    let out = cli(&["flag", flag_id, "--status", "resolved", "--by", "ops"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, resolved) = client.get("/api/flags?status=resolved").await;
    assert_eq!(resolved[0]["status_by"], "ops");
    let out = cli(&["search", "dobbelt trukket", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!found.as_array().unwrap().is_empty());
    let out = cli(&["customer", "nobody"]);
    assert_eq!(out.status.code(), Some(4), "unknown customer: exit 4");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));

    // A connector feeds the running daemon: its status is what `rapport connectors
    // status` reads, and the metrics count it through the stages.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/corpus/chat/nl-chat-20260212-1544.json"),
        inbox.path().join("late.json"),
    )
    .unwrap();
    let started = Instant::now();
    let connectors = loop {
        let (_, rows) = client.get("/api/connectors").await;
        let published = rows[0]["status"]["published"].as_u64().unwrap_or(0);
        if published > 0 {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the inbox connector never published: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(connectors[0]["name"], "inbox");
    // The newest chat message is from 2026-02-12: the connector's lag is its age.
    assert!(
        connectors[0]["status"]["newest_item_at"].is_string(),
        "{connectors}"
    );
    assert!(
        connectors[0]["status"]["lag_seconds"].as_i64().unwrap() > 86_400,
        "{connectors}"
    );
    assert_eq!(connectors[0]["kind"], "files");
    let cli = support::connectors_status(&config, &nats.url(), data.path());
    assert_eq!(cli[0]["name"], connectors[0]["name"]);
    assert_eq!(cli[0]["kind"], connectors[0]["kind"]);
    assert_eq!(
        cli[0]["status"]["published"],
        connectors[0]["status"]["published"]
    );

    let started = Instant::now();
    let metrics = loop {
        let text = client
            .http
            .get(format!("{}/metrics", client.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(
            &text,
            "rapport_stage_interactions_total{stage=\"analysis\",outcome=\"stored\"}",
        ) > 0.0
        {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        metric(
            &metrics,
            "rapport_connector_read_total{connector=\"inbox\",kind=\"files\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &metrics,
            "rapport_connector_up{connector=\"inbox\",kind=\"files\"}"
        ) == 1.0
    );
    assert!(metric(&metrics, "rapport_batch_tokens_count") >= 1.0);
    assert!(metric(&metrics, "rapport_batch_tokens_sum") > 0.0);
    assert!(metric(&metrics, "rapport_stage_seconds_count{stage=\"store\"}") >= 1.0);
    assert!(metric(&metrics, "rapport_ingest_to_stored_seconds_count") >= 1.0);
    assert_eq!(metric(&metrics, "rapport_dlq_messages"), 0.0);
    assert!(metrics.contains("# TYPE rapport_stage_seconds histogram"));

    // The description lists every route, and an unknown route is a JSON 404.
    let (_, openapi) = client.get("/openapi.json").await;
    for route in [
        "/healthz",
        "/api/customers/{id}",
        "/api/customers/{id}/similar",
        "/api/search",
        "/api/portfolio",
        "/api/flags",
        "/api/flags/{id}",
        "/api/superusers",
        "/api/connectors",
        "/api/alerts",
        "/metrics",
    ] {
        assert!(openapi["paths"][route].is_object(), "{route} undocumented");
    }
    // No rules configured: no alert rows (tests/alerts.rs covers a configured rule).
    let (_, alerts) = client.get("/api/alerts").await;
    assert_eq!(alerts, serde_json::json!([]));
    client
        .expect_error("/api/nothing-here", StatusCode::NOT_FOUND, "openapi.json")
        .await;

    // A client hammering the API is told to slow down (100/s, bursts of 200, per address).
    let mut limited = 0;
    for _ in 0..400 {
        let response = client
            .http
            .get(format!("{}/openapi.json", client.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
            limited += 1;
        }
    }
    assert!(limited > 0, "400 requests at once, none limited");
    drop(daemon);
}

/// The value of the sample named exactly `series` in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(-1.0)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `rapport run --config config/rapport.toml` as shipped, on embedded defaults (its own
/// nats-server, the edge store), with only `RAPPORT_DATA_DIR` and `RAPPORT_API_ADDR` set:
/// the API comes up with a generated token that only the file's owner can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_serves_the_api_with_a_generated_token() {
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let port = support::api::free_port();
    let mut daemon = Command::new(RAPPORT)
        .args(["run", "--config", "config/rapport.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAPPORT_DATA_DIR", data.path())
        .env("RAPPORT_API_ADDR", format!("127.0.0.1:{port}"))
        .env("RAPPORT_MODELS_CACHE", &cache)
        .env("RAPPORT_NATS_SERVER_BINARY", support::nats_binary())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(daemon.try_wait().unwrap().is_none(), "rapport run exited");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no API on {port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let file = data.path().join("api.token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    let without = http.get(format!("{base}/api/flags")).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    // The shipped connectors read examples/inbox; the API reports them.
    let started = Instant::now();
    loop {
        let rows: Value = http
            .get(format!("{base}/api/connectors"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let examples = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "examples")
            .cloned()
            .unwrap_or_default();
        if examples["status"]["published"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{rows}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

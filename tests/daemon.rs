//! End-to-end: `rapport run` watching sources, the chat webhook, SIGHUP reload, SIGTERM
//! drain, and a nats-server restart underneath, against a real nats-server.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{RAPPORT, TestNats, fixtures, nats_binary};

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(config: &Path, nats_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(RAPPORT);
        cmd.args([
            "run",
            "--role",
            "connectors",
            "--config",
            config.to_str().unwrap(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAPPORT_NATS_URL", nats_url)
        .env("RAPPORT_DATA_DIR", data_dir)
        .env("RAPPORT_NATS_SERVER_BINARY", nats_binary())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit status (the daemon must drain and exit by itself).
    fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `count` until it reaches `want` (bounded; the bound is a hang guard, not a speed test).
async fn wait_for_count(nats: &TestNats, stream: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = nats.stream_messages(stream).await;
        if have >= want || Instant::now() > deadline {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

#[tokio::test]
async fn the_daemon_watches_a_directory_through_a_nats_restart_and_drains_on_sigterm() {
    let mut nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let config = data.path().join("rapport.toml");
    write_config(
        &config,
        &format!(
            "[connectors.inbox]\nkind = \"files\"\npath = \"{}\"\npoll_interval_secs = 1\n",
            inbox.path().display()
        ),
    );
    let daemon = Daemon::start(&config, &nats.url(), data.path(), &[]);

    std::fs::copy(
        fixtures().join("chat/transcript_da.json"),
        inbox.path().join("a.json"),
    )
    .unwrap();
    let first = wait_for_count(&nats, "RAPPORT_INTERACTIONS", 1).await;
    assert!(first > 0, "the first file arrives");

    // The server goes away and comes back on the same port; the daemon reconnects.
    nats.restart().await;
    std::fs::copy(
        fixtures().join("chat/transcript_sv.json"),
        inbox.path().join("b.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("call/kundesenter-no.vtt"),
        inbox.path().join("c.vtt"),
    )
    .unwrap();
    let dry = support::rapport(
        &[
            "ingest",
            inbox.path().to_str().unwrap(),
            "--dry-run",
            "--json",
        ],
        None,
        data.path(),
        &[],
    );
    let expected = String::from_utf8_lossy(&dry.stdout).lines().count() as u64;
    let have = wait_for_count(&nats, "RAPPORT_INTERACTIONS", expected).await;
    assert_eq!(
        have, expected,
        "every interaction after the restart, none twice"
    );

    let status = daemon.terminate();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, expected);

    // Its counters outlive it, for `rapport connectors status`.
    let rows = support::connectors_status(&config, &nats.url(), data.path());
    let inbox_row = rows.iter().find(|r| r["name"] == "inbox").unwrap();
    assert_eq!(inbox_row["status"]["published"], expected, "{rows:?}");
}

#[tokio::test]
async fn an_unfinished_last_line_waits_for_its_writer_instead_of_being_dead_lettered() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let config = data.path().join("rapport.toml");
    write_config(
        &config,
        &format!(
            "[connectors.live]\nkind = \"files\"\npath = \"{}\"\nformat = \"chat-json\"\npoll_interval_secs = 1\n",
            inbox.path().display()
        ),
    );
    let file = inbox.path().join("chat.ndjson");
    let line = |id: &str| {
        format!(
            r#"{{"conversation_id":"c1","id":"{id}","at":"2026-03-01T10:00:00Z","role":"customer","text":"Hvor er min ordre {id}?"}}"#
        )
    };
    let partial = line("m2");
    std::fs::write(&file, format!("{}\n{}", line("m1"), &partial[..30])).unwrap();
    let daemon = Daemon::start(&config, &nats.url(), data.path(), &[]);
    assert_eq!(wait_for_count(&nats, "RAPPORT_INTERACTIONS", 1).await, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await; // two more scans see the tail
    // The writer finishes the line.
    std::fs::write(&file, format!("{}\n{}\n", line("m1"), partial)).unwrap();
    assert_eq!(wait_for_count(&nats, "RAPPORT_INTERACTIONS", 2).await, 2);
    assert!(daemon.terminate().success());
    assert_eq!(
        nats.stream_messages("RAPPORT_DLQ").await,
        0,
        "nothing was dead-lettered"
    );
}

#[tokio::test]
async fn sighup_reloads_connectors_without_losing_position() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::copy(
        fixtures().join("chat/transcript_da.json"),
        one.path().join("a.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("chat/transcript_sv.json"),
        two.path().join("b.json"),
    )
    .unwrap();
    let connector = |name: &str, dir: &Path| {
        format!(
            "[connectors.{name}]\nkind = \"files\"\npath = \"{}\"\npoll_interval_secs = 1\n",
            dir.display()
        )
    };
    let config = data.path().join("rapport.toml");
    write_config(&config, &connector("one", one.path()));
    let daemon = Daemon::start(&config, &nats.url(), data.path(), &[]);
    let after_one = wait_for_count(&nats, "RAPPORT_INTERACTIONS", 5).await;
    assert!(after_one >= 5, "{after_one}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_one = nats.stream_messages("RAPPORT_INTERACTIONS").await;

    write_config(
        &config,
        &format!(
            "{}{}",
            connector("one", one.path()),
            connector("two", two.path())
        ),
    );
    daemon.signal("-HUP");
    let want = after_one + 3;
    let have = wait_for_count(&nats, "RAPPORT_INTERACTIONS", want).await;
    assert!(have >= want, "connector two started after SIGHUP: {have}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = nats.stream_messages("RAPPORT_INTERACTIONS").await;
    assert!(daemon.terminate().success());
    // Connector one restarted from its checkpoint: it re-read nothing (no duplicates were
    // even attempted, so its published counter equals the first pass).
    let rows = support::connectors_status(&config, &nats.url(), data.path());
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(row("one")["status"]["duplicates"], 0, "{rows:?}");
    assert_eq!(
        settled,
        after_one + row("two")["status"]["published"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn the_chat_webhook_authenticates_stores_and_dead_letters() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = data.path().join("rapport.toml");
    write_config(
        &config,
        &format!(
            "[api]\naddr = \"127.0.0.1:{port}\"\nmax_body_bytes = 20000\n[connectors.live-chat]\nkind = \"chat-webhook\"\n"
        ),
    );
    let daemon = Daemon::start(
        &config,
        &nats.url(),
        data.path(),
        &[("RAPPORT_API_TOKEN", "s3cret")],
    );
    let url = format!("http://127.0.0.1:{port}/ingest/chat");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let transcript = std::fs::read(fixtures().join("chat/transcript_da.json")).unwrap();
    let unauthorised = loop {
        match http.post(&url).body(transcript.clone()).send().await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("webhook never listened: {e}"),
        }
    };
    assert_eq!(unauthorised.status(), 401);
    let wrong = http
        .post(&url)
        .bearer_auth("nope")
        .body(transcript.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = http
        .post(&url)
        .bearer_auth("s3cret")
        .body(transcript.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let body: serde_json::Value = ok.json().await.unwrap();
    let accepted = body["accepted"].as_u64().unwrap();
    assert!(accepted >= 3, "{body}");
    // 202 means stored: no waiting needed.
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, accepted);

    let again = http
        .post(&url)
        .bearer_auth("s3cret")
        .body(transcript)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(
        nats.stream_messages("RAPPORT_INTERACTIONS").await,
        accepted,
        "a resend is deduplicated"
    );

    let bad = http
        .post(&url)
        .bearer_auth("s3cret")
        .body(r#"{"conversation_id":"x","messages":[{"at":"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated JSON"),
        "{body}"
    );
    assert_eq!(nats.stream_messages("RAPPORT_DLQ").await, 1);

    let huge = http
        .post(&url)
        .bearer_auth("s3cret")
        .body(vec![b' '; 30_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert!(daemon.terminate().success());
}

#[test]
fn config_check_reports_problems_with_lines_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[nats]\nurl = \"http//x\"\nwindow = 3\n[connectors.x]\nkind = \"fax\"\n",
    )
    .unwrap();
    let out = Command::new(RAPPORT)
        .args(["config", "check", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bad.toml:2: nats.url: bad URL"), "{text}");
    assert!(
        text.contains("bad.toml:3: nats.window: unknown key"),
        "{text}"
    );
    assert!(
        text.contains("bad.toml:5: connectors.x.kind: unknown kind \"fax\""),
        "{text}"
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rapport.toml");
    let out = Command::new(RAPPORT)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["config", "check", shipped.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// With `qdrant.url` set the store is a Qdrant server; one that does not answer is named,
/// and nothing (not even the client library's own notices) reaches `--json` output.
#[test]
fn a_configured_qdrant_server_that_does_not_answer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(RAPPORT)
        .args(["portfolio", "--json"])
        .env("RAPPORT_QDRANT_URL", &url)
        .env("RAPPORT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(&url) && error.contains("no Qdrant server answers there"),
        "{error}"
    );
    // The embedded store was not touched instead.
    assert!(!dir.path().join("store").exists());
}

#[test]
fn connectors_test_parses_the_first_items_of_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::copy(
        fixtures().join("email/dk-thread-1.eml"),
        inbox.join("1.eml"),
    )
    .unwrap();
    let config = dir.path().join("r.toml");
    std::fs::write(
        &config,
        format!(
            "[connectors.mail]\nkind = \"files\"\npath = \"{}\"\n",
            inbox.display()
        ),
    )
    .unwrap();
    let out = Command::new(RAPPORT)
        .args([
            "connectors",
            "test",
            "mail",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("RAPPORT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("[eml]: 1 interaction(s), 0 rejected"),
        "{text}"
    );
    let missing = Command::new(RAPPORT)
        .args([
            "connectors",
            "test",
            "nope",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[tokio::test]
async fn only_the_daemon_changes_stream_limits() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let max_age = |nats: &TestNats| {
        let nats = nats.url();
        async move {
            let js = async_nats::jetstream::new(async_nats::connect(nats).await.unwrap());
            let mut stream = js.get_stream("RAPPORT_INTERACTIONS").await.unwrap();
            stream.info().await.unwrap().config.max_age
        }
    };
    // A one-off command creates what is missing, with its settings...
    let fixture = fixtures().join("chat/transcript_da.json");
    let out = support::rapport(
        &["ingest", fixture.to_str().unwrap()],
        Some(&nats.url()),
        data.path(),
        &[("RAPPORT_NATS_STREAM_MAX_AGE_DAYS", "90")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(max_age(&nats).await, Duration::from_secs(90 * 86400));
    // ...but run again with other settings (another shell's env), it changes nothing.
    let out = support::rapport(
        &["ingest", fixture.to_str().unwrap()],
        Some(&nats.url()),
        data.path(),
        &[("RAPPORT_NATS_STREAM_MAX_AGE_DAYS", "1")],
    );
    assert!(out.status.success());
    assert_eq!(max_age(&nats).await, Duration::from_secs(90 * 86400));
    // The daemon applies its configuration.
    let config = data.path().join("rapport.toml");
    write_config(&config, "[nats]\nstream_max_age_days = 7\n");
    let daemon = Daemon::start(&config, &nats.url(), data.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while max_age(&nats).await != Duration::from_secs(7 * 86400) {
        assert!(
            Instant::now() < deadline,
            "the daemon did not apply stream_max_age_days"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.terminate().success());
}

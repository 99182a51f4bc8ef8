//! `rapport dlq list|replay` against a real nats-server: dead letters are listed with their
//! reasons; replay publishes what the current settings can read and deletes only those
//! letters, and keeps what still fails.

mod support;

use bytes::Bytes;
use rapport_pipeline::dlq::DeadLetter;
use serde_json::Value;
use support::{TestNats, fixtures, rapport};

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_once_they_can_be_read() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let url = nats.url();
    let inbox = tempfile::tempdir().unwrap();
    let chat = inbox.path().join("chat.json");
    std::fs::copy(fixtures().join("chat/transcript_da.json"), &chat).unwrap();

    // A transcript over a (mis)configured size cap is dead-lettered with the reason.
    let out = rapport(
        &["ingest", chat.to_str().unwrap(), "--json"],
        Some(&url),
        data.path(),
        &[("RAPPORT_INGEST_MAX_FILE_BYTES", "100")],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A record the workers could not use (say a model failed), now fine as it is.
    let record = serde_json::json!({
        "id": "chat:replayed:1", "conversation_id": "chat:replayed", "channel": "chat",
        "connector": "live-chat", "occurred_at": "2026-05-01T10:00:00Z",
        "author": {"role": "customer", "ids": ["email:kunde@example.dk"]},
        "text": "Hvor er min pakke?", "public": false
    });
    let letter = DeadLetter {
        stage: "analysis".into(),
        reason: "analysis failed: model not loaded".into(),
        connector: "chat".into(),
        source: "RAPPORT_INTERACTIONS".into(),
        offset: Some(7),
        original_subject: Some("rapport.interactions.chat".into()),
        raw: Bytes::from(serde_json::to_vec(&record).unwrap()),
    };
    let (subject, headers, payload) = letter.to_message(65_536);
    let js = nats.jetstream().await;
    js.publish_with_headers(subject, headers, payload)
        .await
        .unwrap()
        .await
        .unwrap();
    // And a unit no setting makes readable.
    let broken = inbox.path().join("broken.json");
    std::fs::write(&broken, b"{\"messages\": [{\"text\": ").unwrap();
    let out = rapport(
        &["ingest", broken.to_str().unwrap(), "--json"],
        Some(&url),
        data.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(3));

    let list = json_of(&rapport(
        &["dlq", "list", "--json"],
        Some(&url),
        data.path(),
        &[],
    ));
    let letters = list.as_array().unwrap();
    assert_eq!(letters.len(), 3, "{list}");
    assert!(
        letters[0]["reason"].as_str().unwrap().contains("100"),
        "{list}"
    );
    assert_eq!(letters[1]["stage"], "analysis");
    assert_eq!(letters[1]["reason"], "analysis failed: model not loaded");
    let only_ingest = json_of(&rapport(
        &["dlq", "list", "--stage", "ingest", "--json"],
        Some(&url),
        data.path(),
        &[],
    ));
    assert_eq!(only_ingest.as_array().unwrap().len(), 2);
    let bad = rapport(
        &["dlq", "list", "--stage", "nope"],
        Some(&url),
        data.path(),
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"nope\""));

    // Replay with the cap back at its default: the transcript and the record go through,
    // the broken file stays with its reason.
    let before = nats.stream_messages("RAPPORT_INTERACTIONS").await;
    let out = rapport(&["dlq", "replay", "--json"], Some(&url), data.path(), &[]);
    assert_eq!(out.status.code(), Some(3), "one letter kept");
    let report = json_of(&out);
    let outcomes: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["replayed", "replayed", "kept"], "{report}");
    let after = nats.stream_messages("RAPPORT_INTERACTIONS").await;
    assert!(after > before + 1, "published: {before} → {after}");
    let left = json_of(&rapport(
        &["dlq", "list", "--json"],
        Some(&url),
        data.path(),
        &[],
    ));
    let left = left.as_array().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0]["source"].as_str().unwrap().ends_with("broken.json"));
    // Replaying again changes nothing.
    let again = json_of(&rapport(
        &["dlq", "replay", "--json"],
        Some(&url),
        data.path(),
        &[],
    ));
    assert_eq!(again.as_array().unwrap().len(), 1);
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, after);
}

//! End-to-end: `rapport ingest` against a real nats-server started by the test.

mod support;

use support::{TestNats, fixtures, ingest_report, rapport, write_chat_ndjson};

/// Distinct interaction ids in `--dry-run --json` output (the mbox fixture repeats the
/// .eml threads, so some ids occur twice).
fn distinct_ids(output: &std::process::Output) -> usize {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[tokio::test]
async fn ingest_publishes_every_fixture_once_and_a_rerun_adds_nothing() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let fixtures = fixtures();
    let fixtures = fixtures.to_str().unwrap();

    let dry = rapport(
        &["ingest", fixtures, "--dry-run", "--json"],
        None,
        data.path(),
        &[],
    );
    let expected = distinct_ids(&dry) as u64;
    assert!(expected >= 40, "fixtures yield interactions: {expected}");
    assert_eq!(
        dry.status.code(),
        Some(3),
        "some fixtures are deliberately bad"
    );

    let first = rapport(&["ingest", fixtures], Some(&nats.url()), data.path(), &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{stderr}");
    assert_eq!(
        nats.stream_messages("RAPPORT_INTERACTIONS").await,
        expected,
        "{stderr}"
    );
    let dead = nats.stream_messages("RAPPORT_DLQ").await;
    assert!(dead >= 10, "bad fixtures are dead-lettered: {dead}");

    // Same files again: checkpoints skip them, nothing is added anywhere.
    let (_, report) = ingest_report(&[fixtures], Some(&nats.url()), data.path());
    assert_eq!(report["files_read"], 0, "{report}");
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, expected);
    assert_eq!(nats.stream_messages("RAPPORT_DLQ").await, dead);

    // Under another connector name (no checkpoints), JetStream's duplicate window drops all.
    let (_, report) = ingest_report(
        &[fixtures, "--connector", "second-import"],
        Some(&nats.url()),
        data.path(),
    );
    assert_eq!(report["stored"], 0, "{report}");
    assert_eq!(report["duplicates"], report["interactions"], "{report}");
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, expected);
}

#[tokio::test]
async fn dead_letters_name_the_reason_source_and_offset() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let out = rapport(
        &["ingest", fixtures().to_str().unwrap()],
        Some(&nats.url()),
        data.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let letters = nats.read_stream("RAPPORT_DLQ").await;
    let reasons: Vec<(String, String, String)> = letters
        .iter()
        .map(|m| {
            let h = m.headers.as_ref().expect("dead letters have headers");
            let get = |k: &str| h.get(k).map(|v| v.as_str().to_string()).unwrap_or_default();
            (
                get("Rapport-Reason"),
                get("Rapport-Source"),
                get("Rapport-Offset"),
            )
        })
        .collect();
    let has = |needle: &str| reasons.iter().any(|(r, _, _)| r.contains(needle));
    for needle in [
        "truncated JSON",
        "not valid UTF-8",
        "empty body",
        "invalid timestamp",
        "invalid WebVTT timestamp",
        "invalid SRT timestamp",
    ] {
        assert!(has(needle), "no dead letter says {needle:?}: {reasons:#?}");
    }
    let ndjson = reasons
        .iter()
        .find(|(r, s, _)| s.ends_with("mixed.ndjson") && r.contains("truncated JSON"))
        .expect("the truncated NDJSON line is dead-lettered");
    assert_ne!(
        ndjson.2, "0",
        "a bad line carries its own offset, not the file's"
    );
    assert!(
        letters
            .iter()
            .all(|m| m.subject.as_str() == "rapport.dlq.ingest")
    );
    assert!(letters.iter().all(|m| {
        !m.payload.is_empty()
            || m.headers
                .as_ref()
                .unwrap()
                .get("Rapport-Raw-Bytes")
                .unwrap()
                .as_str()
                == "0"
    }));
}

#[tokio::test]
async fn huge_messages_are_rejected_by_the_configured_cap() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.ndjson");
    let big = "x".repeat(5000);
    std::fs::write(
        &file,
        format!(
            "{{\"conversation_id\":\"c\",\"id\":\"small\",\"at\":\"2026-01-01T10:00:00Z\",\"role\":\"customer\",\"text\":\"hej\"}}\n{{\"conversation_id\":\"c\",\"id\":\"big\",\"at\":\"2026-01-01T10:00:00Z\",\"role\":\"customer\",\"text\":\"{big}\"}}\n"
        ),
    )
    .unwrap();
    let out = rapport(
        &["ingest", file.to_str().unwrap()],
        Some(&nats.url()),
        data.path(),
        &[("RAPPORT_INGEST_MAX_MESSAGE_BYTES", "1000")],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, 1);
    let letters = nats.read_stream("RAPPORT_DLQ").await;
    let reason = letters[0]
        .headers
        .as_ref()
        .unwrap()
        .get("Rapport-Reason")
        .unwrap()
        .as_str()
        .to_string();
    assert!(
        reason.contains("too large") && reason.contains("1000"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_interrupted_ingest_resumes_and_stores_each_interaction_exactly_once() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.ndjson");
    const TOTAL: usize = 60_000;
    write_chat_ndjson(&file, 0..TOTAL / 2);

    // First half, completely.
    let out = rapport(
        &["ingest", file.to_str().unwrap()],
        Some(&nats.url()),
        data.path(),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        nats.stream_messages("RAPPORT_INTERACTIONS").await,
        (TOTAL / 2) as u64
    );

    // The file grows; an ingest is killed part-way through the new half.
    write_chat_ndjson(&file, TOTAL / 2..TOTAL);
    let mut child = std::process::Command::new(support::RAPPORT)
        .args(["ingest", file.to_str().unwrap()])
        .env_clear()
        .env("RAPPORT_DATA_DIR", data.path())
        .env("RAPPORT_NATS_URL", nats.url())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stored = nats.stream_messages("RAPPORT_INTERACTIONS").await;
        if stored > (TOTAL / 2 + 1000) as u64 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();

    // Resume: the checkpoint skips the first half, dedup covers the rest.
    let (code, report) = ingest_report(&[file.to_str().unwrap()], Some(&nats.url()), data.path());
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report["interactions"].as_u64().unwrap() <= (TOTAL / 2) as u64,
        "resumed after the first half, not from the start: {report}"
    );
    assert_eq!(
        nats.stream_messages("RAPPORT_INTERACTIONS").await,
        TOTAL as u64
    );
    let ids: std::collections::HashSet<String> = nats
        .read_stream("RAPPORT_INTERACTIONS")
        .await
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), TOTAL, "each interaction exactly once");
}

#[tokio::test]
async fn a_mbox_that_grows_resumes_at_the_next_message() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read(fixtures().join("email/both-threads.mbox")).unwrap();
    // Cut after the third message: find the fourth "From " separator line.
    let text = String::from_utf8_lossy(&source);
    let cut = text
        .match_indices("\nFrom ")
        .nth(2)
        .map(|(i, _)| i + 1)
        .expect("the fixture holds six messages");
    let file = dir.path().join("support.mbox");
    std::fs::write(&file, &source[..cut]).unwrap();
    let (_, first) = ingest_report(&[file.to_str().unwrap()], Some(&nats.url()), data.path());
    assert_eq!(first["stored"], 3, "{first}");
    std::fs::write(&file, &source).unwrap();
    let (_, second) = ingest_report(&[file.to_str().unwrap()], Some(&nats.url()), data.path());
    assert_eq!(
        second["units"], 3,
        "only the appended messages are read: {second}"
    );
    assert_eq!(second["stored"], 3, "{second}");
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, 6);
}

#[tokio::test]
async fn without_a_nats_url_rapport_runs_its_own_nats_server() {
    let data = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("chat/transcript_da.json");
    let (code, report) = ingest_report(&[fixture.to_str().unwrap()], None, data.path());
    assert_eq!(code, Some(0), "{report}");
    assert!(report["stored"].as_u64().unwrap() > 0, "{report}");
    assert!(
        data.path().join("nats/jetstream").is_dir(),
        "JetStream store under the data dir"
    );
    // The child was stopped on exit: its port file is gone and a second run starts afresh,
    // finding the first run's checkpoint in the same store.
    assert!(!data.path().join("nats/rapport-nats.port").exists());
    let (_, report) = ingest_report(&[fixture.to_str().unwrap()], None, data.path());
    assert_eq!(report["files_unchanged"], 1, "{report}");
}

/// Every corpus file in the channel folders either yields well-formed interactions or is
/// rejected with a reason; nothing panics, nothing is silently dropped.
#[test]
fn every_corpus_channel_file_yields_interactions_or_a_clear_rejection() {
    let Some(root) = support::corpus("") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for channel in ["email", "chat", "call", "social"] {
        collect_inputs(&root.join(channel), &mut files);
    }
    assert!(files.len() > 80, "corpus inputs found: {}", files.len());
    let (mut parsed, mut rejected) = (0, 0);
    for file in &files {
        let out = rapport(
            &["ingest", file.to_str().unwrap(), "--dry-run", "--json"],
            None,
            data.path(),
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 3)),
            "{}: exit {code:?}: {stderr}",
            file.display()
        );
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for r in &records {
            assert!(
                !r["text"].as_str().unwrap().trim().is_empty(),
                "{}: empty text {r}",
                file.display()
            );
            assert!(!r["conversation_id"].as_str().unwrap().is_empty());
            assert!(matches!(
                r["author"]["role"].as_str(),
                Some("customer" | "agent" | "bot" | "unknown")
            ));
            assert!(
                r["occurred_at"].as_str().unwrap().ends_with('Z'),
                "UTC: {r}"
            );
        }
        if code == Some(3) {
            let reason = stderr
                .lines()
                .find(|l| l.starts_with("rejected: "))
                .unwrap_or_default();
            assert!(
                reason.len() > "rejected: ".len() + file.display().to_string().len() + 5,
                "{}: no reason: {stderr}",
                file.display()
            );
            rejected += 1;
        }
        if !records.is_empty() {
            parsed += 1;
        }
        assert!(
            !records.is_empty() || code == Some(3),
            "{}: neither interactions nor a rejection",
            file.display()
        );
    }
    eprintln!(
        "corpus: {} files, {parsed} with interactions, {rejected} with rejections",
        files.len()
    );
}

/// Inputs in a corpus folder: everything but provenance files and mail-parser's expected
/// parse results (the `.json` beside each `.eml`).
fn collect_inputs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let provenance = ["SOURCES", "LICENSE", "README"]
            .iter()
            .any(|p| name.starts_with(p));
        let expected_parse = name.ends_with(".json") && path.with_extension("eml").exists()
            || name.ends_with(".expected.json")
            || name == "ontology.json"
            || name == "kb.json";
        if path.is_dir() {
            collect_inputs(&path, out);
        } else if !provenance && !expected_parse {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn a_maildir_message_moving_from_new_to_cur_is_not_read_twice() {
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let maildir = tempfile::tempdir().unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir(maildir.path().join(sub)).unwrap();
    }
    let email = fixtures().join("email");
    std::fs::copy(
        email.join("dk-thread-1.eml"),
        maildir.path().join("new/1700000001.M1P1.host"),
    )
    .unwrap();
    std::fs::copy(
        email.join("dk-thread-2.eml"),
        maildir.path().join("new/1700000002.M2P1.host"),
    )
    .unwrap();
    // A message still being delivered sits in tmp/ and is not read.
    std::fs::copy(
        email.join("dk-thread-3.eml"),
        maildir.path().join("tmp/1700000003.M3P1.host"),
    )
    .unwrap();
    let path = maildir.path().to_str().unwrap();
    let (_, first) = ingest_report(&[path], Some(&nats.url()), data.path());
    assert_eq!(first["stored"], 2, "{first}");

    // A mail client reads message 1 (new/ → cur/ with flags); message 3 is delivered.
    std::fs::rename(
        maildir.path().join("new/1700000001.M1P1.host"),
        maildir.path().join("cur/1700000001.M1P1.host:2,S"),
    )
    .unwrap();
    std::fs::rename(
        maildir.path().join("tmp/1700000003.M3P1.host"),
        maildir.path().join("new/1700000003.M3P1.host"),
    )
    .unwrap();
    let (_, second) = ingest_report(&[path], Some(&nats.url()), data.path());
    assert_eq!(
        second["files_read"], 1,
        "only the new delivery is read: {second}"
    );
    assert_eq!(second["stored"], 1, "{second}");
    assert_eq!(nats.stream_messages("RAPPORT_INTERACTIONS").await, 3);
}

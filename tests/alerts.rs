//! E-mail alerts end to end: complaints ingested through a connector of a running
//! `rapport run` reach a real SMTP server (STARTTLS, login) exactly once, also after the
//! server was down and after the daemon itself was killed with alerts still queued.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::api::ApiDaemon;
use support::smtp::{self, SmtpServer};
use support::{TestNats, model_wheels};

/// Longest wait for a mail (connector poll + analysis + SMTP); generous for a loaded CI.
const MAIL_WAIT: Duration = Duration::from_secs(120);

/// Drops `<conversation>.json` into the watched inbox: a chat transcript in the generic JSON
/// format, where the customer complains (with a phone number that must not reach the mail)
/// and the agent answers.
fn write_complaint(inbox: &Path, conversation: &str, name: &str, email: &str, complaint: &str) {
    // Participant keys are the chat platform's user ids: one per visitor, not per transcript.
    let visitor = format!("visitor-{}", email.split('@').next().unwrap());
    let chat = json!({
        "conversation_id": conversation,
        "started_at": "2026-11-20T10:00:00+01:00",
        "participants": {
            visitor.as_str(): { "role": "visitor", "name": name, "email": email },
            "agent-mia": { "role": "agent", "name": "Mia" }
        },
        "messages": [
            { "id": "m1", "at": "2026-11-20T10:00:00+01:00", "from": visitor, "text": complaint },
            { "id": "m2", "at": "2026-11-20T10:02:00+01:00", "from": "agent-mia",
              "text": "Det er jeg virkelig ked af. Jeg sender en ny med det samme og refunderer fragten." }
        ]
    });
    std::fs::write(inbox.join(format!("{conversation}.json")), chat.to_string()).unwrap();
}

const COMPLAINTS: [&str; 3] = [
    "Tredje gang at pakken kommer i stykker! Det er fuldstændig uacceptabelt, jeg vil have pengene tilbage nu. Ring til mig på 20 12 34 56.",
    "This is the worst service I have ever had. The replacement arrived broken again and nobody answers. Call me on +44 7700 900123.",
    "Jag är så trött på er! Tre veckor utan leverans och ingen svarar. Jag vill ha pengarna tillbaka, ring mig på 070-123 45 67.",
];

fn config(dir: &Path, inbox: &Path, smtp: &SmtpServer) -> std::path::PathBuf {
    let path = dir.join("rapport.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[connectors.chats]
kind = "files"
path = "{inbox}"
poll_interval_secs = 1

[smtp]
host = "127.0.0.1"
port = {port}
security = "starttls"
username = "{user}"
password_file = "{password}"
ca_file = "{cert}"
from = "Rapport <rapport@example.dk>"
timeout_secs = 5
retry_initial_secs = 1
retry_max_secs = 2

[alerts.service]
kinds = ["complaint"]
recipients = ["Kundeservice <service@example.dk>", "lead@example.dk"]
mode = "immediate"
"#,
            inbox = inbox.display(),
            port = smtp.port,
            user = smtp::USER,
            password = smtp.password_file().display(),
            cert = smtp.cert().display(),
        ),
    )
    .unwrap();
    path
}

/// Waits until the server holds `n` mails; fails after [`MAIL_WAIT`].
async fn wait_for_mails(server: &SmtpServer, n: usize) -> Vec<Vec<u8>> {
    let started = Instant::now();
    loop {
        let mails = server.received();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            started.elapsed() < MAIL_WAIT,
            "{} mail(s) after {MAIL_WAIT:?}, expected {n}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The rule's row in `/api/alerts`.
async fn rule_stats(daemon: &ApiDaemon) -> Value {
    let rows = daemon.get_json("/api/alerts").await;
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "service")
        .cloned()
        .unwrap_or_else(|| panic!("no rule service in {rows}"))
}

/// Waits until the rule has tried and failed to send, with `pending` alerts kept.
async fn wait_for_failure(daemon: &ApiDaemon, pending: u64) -> Value {
    let started = Instant::now();
    loop {
        let stats = rule_stats(daemon).await;
        if stats["send_failures"].as_u64() > Some(0) && stats["pending"] == pending {
            return stats;
        }
        assert!(
            started.elapsed() < MAIL_WAIT,
            "no failed send with {pending} pending: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Mail {
    envelope_to: String,
    to: String,
    from: String,
    subject: String,
    message_id: String,
    body: String,
}

fn parse(raw: &[u8]) -> Mail {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    let addresses = |list: Option<&mail_parser::Address>| {
        list.map(|a| {
            a.iter()
                .filter_map(|a| a.address())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    Mail {
        envelope_to: message
            .header_raw("X-Envelope-To")
            .unwrap_or_default()
            .trim()
            .to_string(),
        to: addresses(message.to()),
        from: addresses(message.from()),
        subject: message.subject().unwrap_or_default().to_string(),
        message_id: message.message_id().unwrap_or_default().to_string(),
        body: message.body_text(0).unwrap_or_default().to_string(),
    }
}

/// The customer the stored complaint flag of `conversation` names.
async fn flagged_customer(daemon: &ApiDaemon, conversation: &str) -> String {
    let flags = daemon.get_json("/api/flags?kind=complaint").await;
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["conversation_id"] == format!("chat:{conversation}"))
        .and_then(|f| f["customer_id"].as_str())
        .unwrap_or_else(|| panic!("no complaint flag for {conversation}: {flags}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_mailed_exactly_once_through_outages_and_restarts() {
    let test = "a_complaint_is_mailed_exactly_once_through_outages_and_restarts";
    let Some(cache) = model_wheels() else { return };
    let Some(mut server) = SmtpServer::start(test) else {
        return;
    };
    let nats = TestNats::start().await;
    let data = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let config = config(data.path(), inbox.path(), &server);
    let nats_url = nats.url();
    let start = || ApiDaemon::start(data.path(), &cache, &nats_url, Some(&config), &[]);
    let daemon = start().await;

    // 1. A complaint arrives through the connector: one mail, to both recipients.
    write_complaint(
        inbox.path(),
        "alert-a",
        "Anders Poulsen",
        "anders@mail.example",
        COMPLAINTS[0],
    );
    let mails = wait_for_mails(&server, 1).await;
    let first = parse(&mails[0]);
    let customer = flagged_customer(&daemon, "alert-a").await;
    assert_eq!(first.envelope_to, "service@example.dk, lead@example.dk");
    assert_eq!(first.to, "service@example.dk, lead@example.dk");
    assert_eq!(first.from, "rapport@example.dk");
    assert!(
        first.subject.starts_with("[Rapport] Complaint (")
            && first.subject.contains(&customer)
            && first.subject.contains("chat"),
        "subject: {}",
        first.subject
    );
    for expected in [
        format!("Customer: {customer}"),
        "Channel: chat".to_string(),
        "Tredje gang at pakken kommer i stykker!".to_string(),
        format!("{}/#/customer/{customer}", daemon.base),
    ] {
        assert!(
            first.body.contains(&expected),
            "{expected:?} missing from the mail:\n{}",
            first.body
        );
    }
    assert!(
        first.body.contains("[phone]") && !first.body.contains("20 12 34 56"),
        "the evidence is redacted:\n{}",
        first.body
    );
    assert!(first.message_id.ends_with("@example.dk"));

    // Nothing more comes for it (the alert is marked sent, the flag acknowledged).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        server.received().len(),
        1,
        "the first alert was mailed twice"
    );
    let stats = rule_stats(&daemon).await;
    assert_eq!(
        (&stats["alerts_sent"], &stats["pending"]),
        (&json!(1), &json!(0)),
        "{stats}"
    );

    // 2. The mail server is down when the next complaint comes: the alert is tried, kept,
    // and mailed once the server is back.
    server.kill();
    write_complaint(
        inbox.path(),
        "alert-b",
        "Beth Moreland",
        "beth@mail.example",
        COMPLAINTS[1],
    );
    let failed = wait_for_failure(&daemon, 1).await;
    assert!(failed["last_error"].is_string(), "{failed}");
    server.restart();
    let mails = wait_for_mails(&server, 2).await;
    let second = parse(&mails[1]);
    assert!(second.body.contains("The replacement arrived broken again"));
    assert_ne!(second.message_id, first.message_id);
    // Past two retry periods (1 s, then 2 s): still exactly one mail for it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(server.received().len(), 2, "an alert was mailed twice");

    // 3. Server down again, and the daemon dies with the alert queued: after both come
    // back, it is mailed exactly once; nothing mailed before is mailed again.
    server.kill();
    write_complaint(
        inbox.path(),
        "alert-c",
        "Carin Lund",
        "carin@mail.example",
        COMPLAINTS[2],
    );
    wait_for_failure(&daemon, 1).await;
    drop(daemon); // SIGKILL: no drain, no goodbye
    server.restart();
    let daemon = start().await;
    let mails = wait_for_mails(&server, 3).await;
    let third = parse(&mails[2]);
    assert!(
        third.body.contains("Tre veckor utan leverans"),
        "{}",
        third.body
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        server.received().len(),
        3,
        "a restart mailed an alert again"
    );
    let stats = rule_stats(&daemon).await;
    assert_eq!(stats["pending"], 0, "{stats}");
    let metrics = daemon.get_text("/metrics").await;
    assert!(
        metrics.contains("rapport_alerts_pending{rule=\"service\"} 0"),
        "{metrics}"
    );
}

#[test]
fn alerts_test_mails_a_sample_or_says_why_not() {
    let Some(mut server) = SmtpServer::start("alerts_test_mails_a_sample_or_says_why_not") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let inbox = tempfile::tempdir().unwrap();
    let config = config(data.path(), inbox.path(), &server);
    let run = |rule: &str| {
        support::rapport(
            &["alerts", "test", rule, "--config", config.to_str().unwrap()],
            None,
            data.path(),
            &[],
        )
    };

    let out = run("service");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("service@example.dk"));
    let mails = server.received();
    assert_eq!(mails.len(), 1);
    let mail = parse(&mails[0]);
    assert_eq!(mail.envelope_to, "service@example.dk, lead@example.dk");
    assert!(mail.body.contains("test alert"), "{}", mail.body);

    let out = run("nobody");
    assert_eq!(out.status.code(), Some(2), "unknown rule: a usage problem");
    assert!(String::from_utf8_lossy(&out.stderr).contains("alerts.nobody: no such rule"));

    server.kill();
    let out = run("service");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alert not sent") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
}

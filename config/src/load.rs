//! Loading: TOML file → env overrides → typed settings → validation, collecting every
//! problem with its TOML path and line instead of stopping at the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;
use toml::de::DeTable;

use crate::connector::{self, Connector};
use crate::env::{self, EnvOverride};
use crate::problem::{Origin, Problem, Problems};
use crate::settings::Settings;

/// Settings after validation, with the typed connectors.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub connectors: Vec<Connector>,
    /// The file it was read from; `None` for the embedded defaults.
    pub file: Option<PathBuf>,
}

impl Config {
    pub fn connector(&self, name: &str) -> Option<&Connector> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

/// Loads `file` (or the embedded defaults when `None`) with the process environment.
pub fn load(file: Option<&Path>) -> Result<Config, Problems> {
    load_with_env(file, std::env::vars())
}

/// Loads with an explicit environment (tests pass their own).
pub fn load_with_env(
    file: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Problems> {
    let file_name = file.map_or_else(|| "<defaults>".to_string(), |f| f.display().to_string());
    let source = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                path: String::new(),
                origin: Origin::File {
                    file: file_name.clone(),
                    line: None,
                },
                message: format!("cannot read config file: {e}"),
            }])
        })?,
        None => String::new(),
    };
    load_str(&source, &file_name, vars).map(|(settings, connectors)| Config {
        settings,
        connectors,
        file: file.map(Path::to_path_buf),
    })
}

/// The core: parse `source` (named `file_name` in messages), apply env, deserialize, validate.
pub fn load_str(
    source: &str,
    file_name: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(Settings, Vec<Connector>), Problems> {
    let locator = Locator::new(source, file_name);
    let mut table: toml::Table = toml::from_str(source).map_err(|e| {
        Problems(vec![Problem {
            path: String::new(),
            origin: locator.origin_of_span(e.span()),
            message: format!("invalid TOML: {}", e.message().trim()),
        }])
    })?;

    let (overrides, mut problems) = env::resolve(vars, &env::Names::of(&table));
    let mut env_origin: HashMap<String, EnvOverride> = HashMap::new();
    for o in overrides {
        set_path(&mut table, &o.path, o.value());
        env_origin.insert(o.path.join("."), o);
    }

    let settings = deserialize_recovering(&mut table, &env_origin, &locator, &mut problems);
    let mut connectors = Vec::new();
    let origin = |path: &str| {
        env_origin
            .get(path)
            .map(|o| Origin::Env(o.var.clone()))
            .unwrap_or_else(|| locator.origin_of_path(path))
    };
    if let Some(settings) = &settings {
        problems.extend(validate_settings(settings, &origin));
        for (name, raw) in &settings.connectors {
            let set_keys: Vec<String> = table
                .get("connectors")
                .and_then(|c| c.get(name))
                .and_then(toml::Value::as_table)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            match connector::validate(name, raw, &set_keys, &settings.ingest.company_domains) {
                Ok(c) => connectors.push(c),
                Err(found) => {
                    for (key, message) in found {
                        let path = if key.is_empty() {
                            format!("connectors.{name}")
                        } else {
                            format!("connectors.{name}.{key}")
                        };
                        problems.push(Problem {
                            origin: origin(&path),
                            path,
                            message,
                        });
                    }
                }
            }
        }
    }
    if let Some(settings) = &settings {
        problems.extend(check_webhooks(settings, &connectors, &origin));
    }
    problems.sort_by_key(|p| match &p.origin {
        Origin::File { line, .. } => (0, line.unwrap_or(usize::MAX)),
        Origin::Env(_) => (1, 0),
    });
    match settings {
        Some(settings) if problems.is_empty() => Ok((settings, connectors)),
        _ => Err(Problems(problems)),
    }
}

/// Deserializes, and on each error records it and removes the offending key, so one run
/// reports every unknown key and wrong type rather than only the first.
fn deserialize_recovering(
    table: &mut toml::Table,
    env_origin: &HashMap<String, EnvOverride>,
    locator: &Locator,
    problems: &mut Vec<Problem>,
) -> Option<Settings> {
    const MAX_ROUNDS: usize = 200;
    for _ in 0..MAX_ROUNDS {
        let value = toml::Value::Table(table.clone());
        let error = match serde_path_to_error::deserialize::<_, Settings>(value) {
            Ok(settings) => return Some(settings),
            Err(error) => error,
        };
        let mut path: Vec<String> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(key.clone()),
                Segment::Seq { index } => Some(index.to_string()),
                Segment::Enum { variant } => Some(variant.clone()),
                Segment::Unknown => None,
            })
            .collect();
        let message = error.inner().message().trim().to_string();
        if let Some(unknown) = unknown_field(&message)
            && path.last() != Some(&unknown)
        {
            path.push(unknown);
        }
        let dotted = path.join(".");
        // An env value that parsed as a TOML literal (`123`) may be meant as a string.
        if let Some(o) = env_origin.get(&dotted)
            && !matches!(get_path(table, &path), Some(toml::Value::String(_)))
        {
            set_path(table, &path, toml::Value::String(o.raw.clone()));
            continue;
        }
        let origin = env_origin
            .get(&dotted)
            .map(|o| Origin::Env(o.var.clone()))
            .unwrap_or_else(|| locator.origin_of_path(&dotted));
        let message = if message.starts_with("unknown field") {
            format!("unknown key: {message}")
        } else {
            message
        };
        problems.push(Problem {
            path: dotted,
            origin,
            message,
        });
        if path.is_empty() || !remove_path(table, &path) {
            return None;
        }
    }
    None
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn get_path<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut value = table.get(first)?;
    for part in rest {
        value = match value {
            toml::Value::Table(t) => t.get(part)?,
            toml::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("made a table above");
    }
    current.insert(last.clone(), value);
}

fn remove_path(table: &mut toml::Table, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = table;
    for part in parents {
        match current.get_mut(part) {
            Some(toml::Value::Table(t)) => current = t,
            _ => return false,
        }
    }
    current.remove(last).is_some()
}

/// Enabled chat webhooks need a bearer token and routes of their own.
fn check_webhooks(
    settings: &Settings,
    connectors: &[Connector],
    origin: &dyn Fn(&str) -> Origin,
) -> Vec<Problem> {
    let mut found = Vec::new();
    let has_token = settings.api.token.is_some() || settings.api.token_file.is_some();
    let mut routes: Vec<(&str, &str)> = Vec::new();
    for connector in connectors.iter().filter(|c| c.enabled) {
        let crate::connector::ConnectorSpec::ChatWebhook { route } = &connector.spec else {
            continue;
        };
        let path = format!("connectors.{}", connector.name);
        if !has_token {
            found.push(Problem {
                origin: origin(&path),
                path: path.clone(),
                message: "a chat-webhook needs a bearer token: set api.token, api.token_file or RAPPORT_API_TOKEN (or enabled = false)".into(),
            });
        }
        if let Some((other, _)) = routes.iter().find(|(_, r)| *r == route.as_str()) {
            found.push(Problem {
                origin: origin(&format!("{path}.route")),
                path: format!("{path}.route"),
                message: format!("route {route:?} is already taken by connectors.{other}"),
            });
        }
        routes.push((&connector.name, route));
    }
    found
}

/// Checks that need more than types: URLs, addresses, files and directories, ranges.
fn validate_settings(settings: &Settings, origin: &dyn Fn(&str) -> Origin) -> Vec<Problem> {
    let mut found: Vec<(String, String)> = Vec::new();
    if let Some(urls) = &settings.nats.url {
        for (n, url) in urls.split(',').map(str::trim).enumerate() {
            // Only the host is quoted back: a NATS URL may carry credentials.
            match url::Url::parse(url) {
                Ok(u)
                    if matches!(u.scheme(), "nats" | "tls" | "ws" | "wss")
                        && u.host().is_some() => {}
                Ok(u) => found.push((
                    "nats.url".into(),
                    format!(
                        "bad URL for host {:?}: expected nats://host:port (scheme {:?})",
                        u.host_str().unwrap_or(""),
                        u.scheme()
                    ),
                )),
                Err(e) => found.push((
                    "nats.url".into(),
                    format!("bad URL (entry {} of the list): {e}", n + 1),
                )),
            }
        }
    }
    let nats = &settings.nats;
    if nats.replicas == 0 {
        found.push(("nats.replicas".into(), "must be at least 1".into()));
    }
    if nats.connect_timeout_secs == 0 {
        found.push((
            "nats.connect_timeout_secs".into(),
            "must be at least 1".into(),
        ));
    }
    let shortest_age = nats.stream_max_age_days.min(nats.dlq_max_age_days) * 24 * 3600;
    if shortest_age > 0 && nats.duplicate_window_secs > shortest_age {
        found.push((
            "nats.duplicate_window_secs".into(),
            format!(
                "{} s is longer than the shortest stream retention ({shortest_age} s); JetStream refuses that",
                nats.duplicate_window_secs
            ),
        ));
    }
    if !["e5-small", "minilm"].contains(&settings.models.default.as_str()) {
        found.push((
            "models.default".into(),
            format!(
                "unknown model {:?}; expected e5-small or minilm",
                settings.models.default
            ),
        ));
    }
    let device = settings.models.device.as_str();
    if device != "cpu"
        && device
            .strip_prefix("cuda:")
            .is_none_or(|n| n.parse::<usize>().is_err())
    {
        found.push((
            "models.device".into(),
            format!("{device:?} is not a device; expected cpu or cuda:<n>"),
        ));
    }
    if !["auto", "f32", "int8", "q8_0", "q4_0"].contains(&settings.models.matmul.as_str()) {
        found.push((
            "models.matmul".into(),
            format!(
                "{:?} is not a matmul kind; expected auto, f32, int8, q8_0 or q4_0",
                settings.models.matmul
            ),
        ));
    }
    if !["auto", "avx512", "avx2", "portable"].contains(&settings.models.simd.as_str()) {
        found.push((
            "models.simd".into(),
            format!(
                "{:?} is not a kernel level; expected auto, avx512, avx2 or portable",
                settings.models.simd
            ),
        ));
    }
    if settings.models.max_batch_tokens < 512 {
        found.push((
            "models.max_batch_tokens".into(),
            "must be at least 512 (one text of the longest length)".into(),
        ));
    }
    // Written so that NaN fails too.
    if settings.profiles.half_life_days.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        found.push((
            "profiles.half_life_days".into(),
            "must be more than 0".into(),
        ));
    }
    let scale = settings.profiles.prototype_scale;
    if !(scale > 0.0 && scale <= 1.0) {
        found.push((
            "profiles.prototype_scale".into(),
            format!("{scale} is not in (0, 1]"),
        ));
    }
    for (path, value) in [
        (
            "flags.complaint_threshold",
            settings.flags.complaint_threshold,
        ),
        ("flags.answer_similarity", settings.flags.answer_similarity),
    ] {
        if !(0.0..=1.0).contains(&value) {
            found.push((path.into(), format!("{value} is not between 0 and 1")));
        }
    }
    let qdrant = &settings.qdrant;
    for (field, value) in [
        ("qdrant.shard_number", qdrant.shard_number),
        ("qdrant.replication_factor", qdrant.replication_factor),
        (
            "qdrant.write_consistency_factor",
            qdrant.write_consistency_factor,
        ),
    ] {
        if value == 0 {
            found.push((field.into(), "must be at least 1".into()));
        }
    }
    if qdrant.write_consistency_factor > qdrant.replication_factor {
        found.push((
            "qdrant.write_consistency_factor".into(),
            format!(
                "{} is more copies than qdrant.replication_factor = {} keeps: no write could ever be confirmed",
                qdrant.write_consistency_factor, qdrant.replication_factor
            ),
        ));
    }
    if settings.analysis.batch_messages == 0 {
        found.push((
            "analysis.batch_messages".into(),
            "must be at least 1".into(),
        ));
    }
    for kind in &settings.privacy.kinds {
        if !crate::settings::PII_KINDS.contains(&kind.as_str()) {
            found.push((
                "privacy.kinds".into(),
                format!(
                    "{kind:?} is not a kind of personal data Rapport redacts; expected {}",
                    crate::settings::PII_KINDS.join(", ")
                ),
            ));
        }
    }
    if settings.api.max_body_bytes == 0 {
        found.push(("api.max_body_bytes".into(), "must be at least 1".into()));
    }
    if settings
        .api
        .token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        found.push((
            "api.token".into(),
            "is empty: set a token or remove the key".into(),
        ));
    }
    if !(1..=4096).contains(&settings.nats.publish_window) {
        found.push((
            "nats.publish_window".into(),
            format!(
                "{} is out of range 1..=4096 (async-nats stalls past ~5000 unacked publishes)",
                settings.nats.publish_window
            ),
        ));
    }
    if settings.nats.max_deliver < 1 {
        found.push(("nats.max_deliver".into(), "must be at least 1".into()));
    }
    if settings.nats.duplicate_window_secs == 0 {
        found.push((
            "nats.duplicate_window_secs".into(),
            "must be at least 1: re-published interactions are deduplicated in this window".into(),
        ));
    }
    if let Some(url) = &settings.qdrant.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        found.push((
            "qdrant.url".into(),
            format!("{url:?} is not a gRPC URL like http://qdrant:6334"),
        ));
    }
    if settings.qdrant.api_key.is_some() && settings.qdrant.api_key_file.is_some() {
        found.push((
            "qdrant.api_key".into(),
            "set either qdrant.api_key or qdrant.api_key_file, not both".into(),
        ));
    }
    if settings.qdrant.timeout_secs == 0 {
        found.push(("qdrant.timeout_secs".into(), "must be at least 1".into()));
    }
    if settings.api.addr.parse::<std::net::SocketAddr>().is_err() {
        found.push((
            "api.addr".into(),
            format!(
                "{:?} is not an address like 127.0.0.1:8700",
                settings.api.addr
            ),
        ));
    }
    if settings.ingest.max_message_bytes == 0 {
        found.push((
            "ingest.max_message_bytes".into(),
            "must be at least 1".into(),
        ));
    }
    let mut file_problems = Vec::new();
    connector::check_optional_file(
        "nats.credentials_file",
        settings.nats.credentials_file.as_deref(),
        &mut file_problems,
    );
    connector::check_optional_file(
        "nats.token_file",
        settings.nats.token_file.as_deref(),
        &mut file_problems,
    );
    connector::check_optional_file(
        "qdrant.api_key_file",
        settings.qdrant.api_key_file.as_deref(),
        &mut file_problems,
    );
    connector::check_optional_file(
        "api.token_file",
        settings.api.token_file.as_deref(),
        &mut file_problems,
    );
    found.extend(file_problems);
    found.extend(crate::alerts::check(settings));
    let data_dir = &settings.data_dir;
    match std::fs::metadata(data_dir) {
        Ok(meta) if !meta.is_dir() => found.push((
            "data_dir".into(),
            format!("{} exists and is not a directory", data_dir.display()),
        )),
        Ok(_) => {
            if let Err(e) = std::fs::read_dir(data_dir) {
                found.push((
                    "data_dir".into(),
                    format!("directory {} is not readable: {e}", data_dir.display()),
                ));
            }
        }
        Err(_) => {} // created at start-up
    }
    found
        .into_iter()
        .map(|(path, message)| Problem {
            origin: origin(&path),
            path,
            message,
        })
        .collect()
}

/// Maps TOML paths and byte spans to 1-based lines of the source.
struct Locator<'a> {
    file: String,
    tree: Option<DeTable<'a>>,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(source: &'a str, file: &str) -> Self {
        let tree = DeTable::parse(source).ok().map(|t| t.into_inner());
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Locator {
            file: file.to_string(),
            tree,
            line_starts,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    fn origin_of_span(&self, span: Option<std::ops::Range<usize>>) -> Origin {
        Origin::File {
            file: self.file.clone(),
            line: span.map(|s| self.line_of(s.start)),
        }
    }

    /// The line of the deepest key of `path` present in the file.
    fn origin_of_path(&self, path: &str) -> Origin {
        let mut span = None;
        if let Some(tree) = &self.tree {
            let mut table = Some(tree);
            for part in path.split('.').filter(|p| !p.is_empty()) {
                let Some(current) = table else { break };
                let Some((key, value)) = current.get_key_value(part) else {
                    break;
                };
                span = Some(key.span());
                table = value.get_ref().as_table();
            }
        }
        self.origin_of_span(span)
    }
}

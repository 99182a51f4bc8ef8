//! `rapport connectors status|test`.

use rapport_config::{Config, ConnectorSpec};
use rapport_connectors::{Format, detect, interactions};
use rapport_pipeline::ingest::files::{Layout, list_files};
use rapport_pipeline::ingest::status::connector_rows;
use rapport_pipeline::{Bus, Checkpoints};

use crate::{EXIT_CONFIG, EXIT_FAILURE};

pub async fn status(config: &Config, json: bool) -> u8 {
    let bus = match Bus::start(&config.settings).await {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("rapport: {e}");
            return EXIT_FAILURE;
        }
    };
    let checkpoints = Checkpoints::new(bus.checkpoints.clone());
    let rows = match connector_rows(&checkpoints, &config.connectors).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("rapport: {e}");
            bus.shutdown().await;
            return EXIT_FAILURE;
        }
    };
    bus.shutdown().await;
    crate::print_statuses(&rows, json);
    0
}

/// Checks the source is reachable and parses its first items, without publishing.
pub async fn test(config: &Config, name: &str) -> u8 {
    let Some(connector) = config.connector(name) else {
        eprintln!(
            "rapport: no connector named {name:?} in the configuration (configured: {})",
            config
                .connectors
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return EXIT_CONFIG;
    };
    let template =
        rapport_pipeline::ingest::files::parse_template(connector, &config.settings.ingest);
    match &connector.spec {
        ConnectorSpec::Files { path, .. } | ConnectorSpec::Maildir { path, .. } => {
            let format = match &connector.spec {
                ConnectorSpec::Files { format, .. } => format.clone(),
                _ => None,
            };
            let layout = match &connector.spec {
                ConnectorSpec::Maildir { .. } => Layout::Maildir,
                _ => Layout::Files(format.as_deref().and_then(Format::from_name)),
            };
            let files = match list_files(path, layout) {
                Ok(files) => files,
                Err(e) => {
                    println!("{name}: {e}");
                    return EXIT_FAILURE;
                }
            };
            println!(
                "{name}: {} readable, {} file(s)",
                path.display(),
                files.len()
            );
            let mut failures = 0;
            for file in files.iter().take(3) {
                let bytes = match std::fs::read(file) {
                    Ok(b) => b,
                    Err(e) => {
                        println!("  {}: cannot read: {e}", file.display());
                        failures += 1;
                        continue;
                    }
                };
                let fmt = match &connector.spec {
                    ConnectorSpec::Maildir { .. } => Some(Format::Eml),
                    _ => format
                        .as_deref()
                        .and_then(Format::from_name)
                        .or_else(|| detect(file, &bytes)),
                };
                let Some(fmt) = fmt else {
                    println!("  {}: unrecognised format", file.display());
                    failures += 1;
                    continue;
                };
                let mut ctx = template.clone();
                ctx.source = file.display().to_string();
                let units = fmt.parse(&bytes, &ctx);
                let ok = interactions(&units).count();
                let bad: Vec<_> = units
                    .iter()
                    .filter_map(|u| u.outcome.as_ref().err())
                    .collect();
                println!(
                    "  {} [{fmt}]: {ok} interaction(s), {} rejected",
                    file.display(),
                    bad.len()
                );
                if let Some(first) = interactions(&units).next() {
                    let text: String = first.text.chars().take(80).collect();
                    println!(
                        "    first: {} {:?} {}: {text:?}",
                        first.occurred_at,
                        first.author.role,
                        first.channel.as_str()
                    );
                }
                for e in bad.iter().take(2) {
                    println!("    rejected: {e}");
                }
                failures += usize::from(ok == 0 && !bad.is_empty());
            }
            if failures > 0 { EXIT_FAILURE } else { 0 }
        }
        ConnectorSpec::ChatWebhook { route } => {
            match rapport_pipeline::daemon::api_token(&config.settings) {
                Some(_) => {
                    println!(
                        "{name}: webhook POST http://{}{route} (bearer token set)",
                        config.settings.api.addr
                    );
                    0
                }
                None => {
                    println!(
                        "{name}: no bearer token: set api.token, api.token_file or RAPPORT_API_TOKEN"
                    );
                    EXIT_CONFIG
                }
            }
        }
        ConnectorSpec::Imap(spec) => report(name, rapport_pipeline::ingest::imap::test(spec).await),
        ConnectorSpec::Mastodon(spec) => {
            report(name, rapport_pipeline::ingest::mastodon::test(spec).await)
        }
    }
}

fn report<E: std::fmt::Display>(name: &str, result: Result<String, E>) -> u8 {
    match result {
        Ok(summary) => {
            println!("{name}: {summary}");
            0
        }
        Err(e) => {
            println!("{name}: {e}");
            EXIT_FAILURE
        }
    }
}

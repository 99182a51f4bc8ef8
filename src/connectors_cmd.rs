//! `rapport connectors status|test`.

use rapport_config::{Config, ConnectorSpec};
use rapport_connectors::{Format, detect, interactions};
use rapport_pipeline::ingest::files::{Layout, list_files};
use rapport_pipeline::ingest::status::connector_rows;
use rapport_pipeline::{Bus, Checkpoints};

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE};

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
            let layout = match &connector.spec {
                ConnectorSpec::Files { format, .. } => Layout::Files(*format),
                _ => Layout::Maildir,
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
                let fmt = match layout {
                    Layout::Maildir => Some(Format::Eml),
                    Layout::Files(format) => format.or_else(|| detect(file, &bytes)),
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

const STAGES: [&str; 2] = ["ingest", "analysis"];

fn stage_ok(stage: Option<&str>) -> Result<(), u8> {
    match stage {
        Some(s) if !STAGES.contains(&s) => {
            eprintln!("rapport: --stage {s:?} is not one of {}", STAGES.join(", "));
            Err(EXIT_CONFIG)
        }
        _ => Ok(()),
    }
}

/// The bus, once `stage` is known to be one with dead letters.
async fn open_bus(config: &Config, stage: Option<&str>) -> Result<Bus, u8> {
    stage_ok(stage)?;
    Bus::start(&config.settings).await.map_err(|e| {
        eprintln!("rapport: {e}");
        EXIT_FAILURE
    })
}

/// `rapport dlq list`.
pub async fn dlq_list(config: &Config, stage: Option<&str>, json: bool) -> u8 {
    let bus = match open_bus(config, stage).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let letters = rapport_pipeline::dlq::list(&bus.jetstream, stage).await;
    bus.shutdown().await;
    let letters = match letters {
        Ok(letters) => letters,
        Err(e) => {
            eprintln!("rapport: {e}");
            return EXIT_FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&letters).expect("serialises")
        );
        return 0;
    }
    println!(
        "{:>6}  {:<16}  {:<8}  {:<14}  {:>8}  source / reason",
        "SEQ", "AT", "STAGE", "CONNECTOR", "BYTES"
    );
    for l in &letters {
        let at = l
            .letter
            .offset
            .map(|o| format!(" (byte {o})"))
            .unwrap_or_default();
        println!(
            "{:>6}  {:<16}  {:<8}  {:<14}  {:>8}  {}{at}\n{:>52}{}",
            l.sequence,
            l.at.date().to_string() + " " + &l.at.time().to_string()[..5],
            l.letter.stage,
            l.letter.connector,
            l.raw_bytes,
            l.letter.source,
            "",
            l.letter.reason
        );
    }
    println!("{} dead letter(s)", letters.len());
    0
}

/// `rapport dlq replay`.
pub async fn dlq_replay(config: &Config, stage: Option<&str>, json: bool) -> u8 {
    let bus = match open_bus(config, stage).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let ingest = &config.settings.ingest;
    // Each letter is parsed with its own connector's settings (company domains, speakers).
    let template = |name: &str| match config.connector(name) {
        Some(connector) => rapport_pipeline::ingest::files::parse_template(connector, ingest),
        None => {
            let mut ctx = rapport_connectors::ParseContext::new(name.to_string(), String::new());
            ctx.company_domains = ingest.company_domains.clone();
            ctx.max_message_bytes = ingest.max_message_bytes;
            ctx.max_file_bytes = ingest.max_file_bytes;
            ctx
        }
    };
    let result = match rapport_pipeline::dlq::list(&bus.jetstream, stage).await {
        Ok(letters) => rapport_pipeline::dlq::replay(&bus, &letters, &template).await,
        Err(e) => Err(e),
    };
    bus.shutdown().await;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("rapport: {e}");
            return EXIT_FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialises")
        );
    } else {
        for r in &report {
            println!(
                "{:>6}  {:<8}  {:<8}  {}: {}",
                r.sequence, r.stage, r.outcome, r.source, r.detail
            );
        }
    }
    let kept = report.iter().filter(|r| r.outcome == "kept").count();
    eprintln!("replayed {}, kept {kept}", report.len() - kept);
    if kept > 0 {
        crate::exit::EXIT_REJECTED
    } else {
        0
    }
}

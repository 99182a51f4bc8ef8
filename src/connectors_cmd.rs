//! `rapport connectors status|test`.

use rapport_config::Config;
use rapport_pipeline::sources::status::connector_rows;
use rapport_pipeline::sources::{SourceContext, Verdict, parse_template, source_kind};
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
    let template = parse_template(Some(connector), name, &config.settings.ingest);
    let cx = SourceContext::new(template, None);
    let tested = (source_kind(connector).test)(connector, &cx, &config.settings).await;
    println!("{name}: {}", tested.report);
    match tested.verdict {
        Verdict::Ready => 0,
        Verdict::Failed => EXIT_FAILURE,
        Verdict::Misconfigured => EXIT_CONFIG,
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
    let template = |name: &str| parse_template(config.connector(name), name, ingest);
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

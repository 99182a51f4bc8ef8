//! `rapport eval`: scores for a labelled file. With `--cv N` a fresh head is trained and
//! tested N times on the file itself (stratified folds): the measure for a file that is
//! also training data (TweetEval sentiment validation) and the encoder's linear-probe check
//! (banking77).

use std::io::Write;
use std::path::PathBuf;

use rapport_config::Config;
use rapport_models::labelled;
use rapport_models::signals;
use rapport_models::train::{self, Architecture, TrainOptions};
use rapport_models::vector_cache::VectorCache;

use crate::models_cmd::load_encoder;
use crate::{EXIT_CONFIG, EXIT_FAILURE};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A labelled file: TweetEval `<split>_text.txt`, a JSON list of {text, label}, or a
    /// CSV with a text and a label column.
    pub file: PathBuf,
    /// The signal whose classes the labels name (sentiment, emotion, complaint); without
    /// it, the file's own labels are the classes (a probe, e.g. banking77's intents).
    #[arg(long)]
    pub signal: Option<String>,
    /// Cross-validate a fresh head over N stratified folds of the file.
    #[arg(long, value_name = "N")]
    pub cv: Option<usize>,
    /// Encoder for the vectors (default models.default).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Head for --cv: linear (logistic regression) or mlp.
    #[arg(long, default_value = "linear", value_parser = ["linear", "mlp"])]
    pub architecture: String,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn eval(config: &Config, args: &EvalArgs) -> Result<(), u8> {
    let examples = labelled::read(&args.file).map_err(|e| {
        eprintln!("rapport eval: {e}");
        EXIT_CONFIG
    })?;
    let spec = match args.signal.as_deref() {
        Some(name) => Some(signals::by_name(name).ok_or_else(|| {
            let known: Vec<&str> = signals::SIGNALS.iter().map(|s| s.name).collect();
            eprintln!(
                "rapport eval: unknown signal {name:?}; expected one of {}",
                known.join(", ")
            );
            EXIT_CONFIG
        })?),
        None => None,
    };
    let classes: Vec<String> = match spec {
        Some(spec) => spec.class_names(),
        None => {
            let mut names: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
            names.sort();
            names.dedup();
            names
        }
    };
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    let mut unknown = std::collections::BTreeMap::<String, usize>::new();
    for example in &examples {
        let class = match spec {
            Some(spec) => spec.class_of(&example.label),
            None => classes.iter().position(|c| *c == example.label),
        };
        match class {
            Some(class) => {
                texts.push(example.text.as_str());
                labels.push(class);
            }
            None => *unknown.entry(example.label.clone()).or_default() += 1,
        }
    }
    if !unknown.is_empty() {
        eprintln!(
            "rapport eval: {}: skipped labels the signal does not have: {unknown:?}",
            args.file.display()
        );
    }
    let Some(folds) = args.cv else {
        eprintln!(
            "rapport eval: evaluating a committed head is not available yet; use --cv N to cross-validate a fresh head on {}",
            args.file.display()
        );
        return Err(EXIT_CONFIG);
    };
    if folds < 2 {
        eprintln!("rapport eval: --cv needs at least 2 folds");
        return Err(EXIT_CONFIG);
    }
    let encoder = load_encoder(config, args.encoder.as_deref(), None, None)?;
    let cache_dir = config.settings.data_dir.join("vector-cache");
    let mut cache = VectorCache::open(&cache_dir, &encoder).map_err(|e| {
        eprintln!("rapport eval: vector cache {}: {e}", cache_dir.display());
        EXIT_FAILURE
    })?;
    let started = std::time::Instant::now();
    let vectors = cache
        .embed(&encoder, &texts, config.settings.models.max_batch_tokens)
        .map_err(|e| {
            eprintln!("rapport eval: {e}");
            EXIT_FAILURE
        })?;
    let embed_seconds = started.elapsed().as_secs_f64();
    let architecture = match args.architecture.as_str() {
        "mlp" => Architecture::Mlp { hidden: 256 },
        _ => Architecture::Linear,
    };
    let options = TrainOptions {
        seed: args.seed,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let confusion =
        train::cross_validate(&vectors, &labels, &classes, architecture, folds, &options).map_err(
            |e| {
                eprintln!("rapport eval: training failed: {e}");
                EXIT_FAILURE
            },
        )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let scores = confusion.scores();
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "file": args.file,
            "signal": args.signal,
            "encoder": encoder.spec().name,
            "matmul": encoder.matmul().name(),
            "architecture": architecture,
            "folds": folds,
            "seed": args.seed,
            "scores": scores,
            "confusion": confusion,
            "embed_seconds": embed_seconds,
            "train_seconds": train_seconds,
        });
        let _ = writeln!(out, "{report}");
    } else {
        let _ = writeln!(
            out,
            "{}: {} examples, {folds}-fold cross-validation, {} head on {} vectors\n\
             accuracy {:.4}  macro-F1 {:.4}  macro-recall {:.4}\n\n{}",
            args.file.display(),
            scores.examples,
            args.architecture,
            encoder.spec().name,
            scores.accuracy,
            scores.macro_f1,
            scores.macro_recall,
            confusion.table()
        );
    }
    Ok(())
}

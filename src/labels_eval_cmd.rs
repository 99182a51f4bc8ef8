//! `rapport eval FILE.jsonl`: each prototype label's precision and recall on a labelled
//! set of messages (`{text, speaker, labels}` per line, as `models/eval/signals-dev/`),
//! flagged as `rapport classify` flags them: the signal branch's trained output where the
//! branch was chosen for the label, the phrase prototypes elsewhere, each at its shipped
//! threshold.

use std::io::Write;

use rapport_config::Config;
use rapport_models::classify::Speaker;
use rapport_models::prototypes::PrecisionRecall;
use rapport_models::signal_branch::recipe::{self, LABELS_TASK};

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};
use crate::model_loading::{load_classifier, prototype_signals};
use crate::signal_args::EvalArgs;

pub fn eval_labels(config: &Config, args: &EvalArgs) -> Result<(), u8> {
    let messages = recipe::read_label_set(&args.file).map_err(fail(EXIT_CONFIG))?;
    if messages.is_empty() {
        return Err(fail(EXIT_CONFIG)(format!(
            "{}: no labelled messages",
            args.file.display()
        )));
    }
    let signals = prototype_signals(config)?;
    let classifier = load_classifier(config)?;
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    let speakers: Vec<Option<Speaker>> = messages
        .iter()
        .map(|m| {
            m.speaker.map(|s| match s {
                recipe::Speaker::Customer => Speaker::Customer,
                recipe::Speaker::Agent => Speaker::Agent,
            })
        })
        .collect();
    let results = classifier
        .classify(&texts, &speakers)
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let trained = classifier
        .branch()
        .head(LABELS_TASK)
        .map(|h| h.card.thresholds.clone())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for label in &signals.labels {
        let mut counts = PrecisionRecall::default();
        for (message, (_, signals)) in messages.iter().zip(&results) {
            // A label the speaker cannot have is left out (`hype` is the agent's).
            let Some(score) = signals.prototypes.get(&label.name) else {
                continue;
            };
            let truth = message.labels.contains(&label.name);
            counts.add(PrecisionRecall::at(
                &[if score.flagged { 1.0 } else { 0.0 }],
                &[truth],
                0.5,
            ));
        }
        let method = if trained.contains_key(&label.name) {
            "trained"
        } else {
            "phrases"
        };
        rows.push((label.name.clone(), method, counts));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let labels: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, method, c)| {
                serde_json::json!({
                    "label": name,
                    "method": method,
                    "true_positives": c.true_positives,
                    "false_positives": c.false_positives,
                    "false_negatives": c.false_negatives,
                    "precision": c.precision(),
                    "recall": c.recall(),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"file": args.file, "messages": messages.len(), "labels": labels})
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} messages, each label as `rapport classify` flags it",
            args.file.display(),
            messages.len()
        );
        let _ = writeln!(
            out,
            "{:<22} {:<8} {:>4} {:>4} {:>4} {:>9} {:>7}",
            "label", "method", "TP", "FP", "FN", "precision", "recall"
        );
        for (name, method, c) in &rows {
            let _ = writeln!(
                out,
                "{name:<22} {method:<8} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
                c.true_positives,
                c.false_positives,
                c.false_negatives,
                c.precision(),
                c.recall()
            );
        }
    }
    Ok(())
}

